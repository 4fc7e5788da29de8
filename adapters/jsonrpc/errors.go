package jsonrpc

import (
	"encoding/json"
	"fmt"
)

// Standard error codes of JSON-RPC 2.0.
const (
	// CodeParseError: the frame is not valid JSON.
	CodeParseError = -32700
	// CodeInvalidRequest: the JSON is not a valid request object (or is an empty batch).
	CodeInvalidRequest = -32600
	// CodeMethodNotFound: no method of that name is registered.
	CodeMethodNotFound = -32601
	// CodeInvalidParams: the params could not be decoded into the method's parameter type.
	CodeInvalidParams = -32602
	// CodeInternalError: the handler failed (returned an unknown error or panicked).
	CodeInternalError = -32603
)

// Error codes of this adapter, in the range -32000 to -32099 that JSON-RPC 2.0 reserves
// for implementations. Applications should use -32000 and codes outside -32768..-32000.
const (
	// CodeUnauthorized: authentication is required (Config.RequireAuth) and missing, or
	// an authenticate call failed (data: {"reason": "expired"|"invalid"|…}).
	CodeUnauthorized = -32001
	// CodeForbidden: the identity may not do this (e.g. subscribe to that topic).
	CodeForbidden = -32003
	// CodeTooManySubscriptions: subscribe would exceed Config.MaxSubscriptions.
	CodeTooManySubscriptions = -32005
	// CodeBatchTooLarge: a batch has more requests than Server.MaxBatch.
	CodeBatchTooLarge = -32010
	// CodeRateLimited answers a batch entry dropped by the connection's message rate limit:
	// every entry after the first is charged like a message of its own.
	CodeRateLimited = -32029
)

// Error is a JSON-RPC error object. A handler returns one (or an error wrapping one) to
// answer a request with that code, message and data; Data is marshalled with
// encoding/json and omitted when nil.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// NewError returns an *Error with the given code, message and data (nil for none).
func NewError(code int, message string, data any) *Error {
	return &Error{Code: code, Message: message, Data: data}
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("jsonrpc: error %d: %s", e.Code, e.Message) }

// marshal returns the JSON of e; a Data that cannot be marshalled is dropped.
func (e *Error) marshal() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(&Error{Code: e.Code, Message: e.Message})
	}
	return b
}
