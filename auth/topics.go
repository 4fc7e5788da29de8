package auth

import (
	"context"
	"fmt"
	"strings"
)

// userTopicPrefix starts every topic reserved for a single user.
const userTopicPrefix = "user:"

// TopicAuthorizer decides whether the connection identified by id may
// subscribe to topic. id is nil when the connection is anonymous. It returns
// nil to allow the subscription and an error wrapping [ErrForbidden] to
// refuse it; other errors (a failed lookup, say) also refuse it.
// A TopicAuthorizer must be safe for concurrent use.
type TopicAuthorizer func(ctx context.Context, id *Identity, topic string) error

var _ TopicAuthorizer = UserTopics

// UserTopics is the default [TopicAuthorizer]. The topic "user:<id>", and
// every topic that starts with "user:<id>:", may be joined only by the
// connection whose Identity.UserID is <id>; anonymous connections are
// refused all such topics. Every topic that does not start with "user:" is
// allowed. Matching is exact and case-sensitive, so "user:42" does not grant
// "user:420" or "user:420:inbox".
//
// Because <id> may itself contain ':', user IDs that are prefixes of one
// another followed by ':' (such as "a" and "a:b") share topic names; avoid
// such IDs or use a stricter authorizer.
func UserTopics(ctx context.Context, id *Identity, topic string) error {
	if !strings.HasPrefix(topic, userTopicPrefix) {
		return nil
	}
	if id == nil {
		return fmt.Errorf("%w: topic %q is private and the connection is anonymous", ErrForbidden, topic)
	}
	if id.UserID != "" {
		own := userTopicPrefix + id.UserID
		if topic == own || strings.HasPrefix(topic, own+":") {
			return nil
		}
	}
	return fmt.Errorf("%w: topic %q belongs to another user", ErrForbidden, topic)
}

// ChainTopicAuthorizers returns a [TopicAuthorizer] that runs each of a in
// order and returns the first error, so a subscription is allowed only if
// every authorizer allows it. Nil authorizers are skipped; with none left,
// every topic is allowed.
func ChainTopicAuthorizers(a ...TopicAuthorizer) TopicAuthorizer {
	chain := make([]TopicAuthorizer, 0, len(a))
	for _, f := range a {
		if f != nil {
			chain = append(chain, f)
		}
	}
	return func(ctx context.Context, id *Identity, topic string) error {
		for _, f := range chain {
			if err := f(ctx, id, topic); err != nil {
				return err
			}
		}
		return nil
	}
}
