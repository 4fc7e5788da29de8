package switchboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrBadMessage is wrapped by every error caused by a malformed message: one
// that cannot be decoded, encoded or built. Test for it with errors.Is.
var ErrBadMessage = errors.New("switchboard: bad message")

// Codec turns messages into frames and frames into messages for one
// endpoint's wire format. Implementations must be safe for concurrent use.
type Codec interface {
	// Name names the wire format, e.g. "json".
	Name() string
	// Binary reports whether frames are binary (true) or text (false).
	Binary() bool
	// Encode appends the frame of m to dst and returns the extended slice.
	Encode(dst []byte, m *Message) ([]byte, error)
	// Decode fills m from frame. Its errors wrap ErrBadMessage and say
	// what is wrong with the frame; on error, m holds at most what is
	// needed to answer the frame (such as its ID). Decode does not keep
	// frame: m holds no reference to it.
	Decode(frame []byte, m *Message) error
}

// JSONCodec is the codec of wire protocol v1: one JSON object per text
// frame. Its zero value is ready, and it is safe for concurrent use.
//
// Encode writes the fields in the order type, payload, id, timestamp,
// correlation_id, topic, seq, epoch. It always writes type, payload ({} for
// none), id and timestamp, and omits correlation_id, topic, seq and epoch
// when they are empty or zero. Strings are escaped as by encoding/json
// without HTML escaping: quotes, backslashes and control characters are
// escaped, U+2028 and U+2029 too, and each byte of invalid UTF-8 becomes
// U+FFFD; <, > and & stay literal. The timestamp is written in the shortest
// form that reads back to the same float64 (a constructor's timestamp, which
// has millisecond precision, looks like 1619712345.123).
//
// Encode does not validate Payload but copies it into the frame verbatim:
// the caller must make sure that a Payload it sets by hand holds valid JSON
// in valid UTF-8, or the frame will be broken. Payloads made by the
// constructors of this package or by Decode always are.
//
// Decode is liberal in what it accepts: unknown fields are ignored; a
// missing or null payload means none, and so does an empty object; any
// other payload value is kept raw (as its exact bytes) for the handler to
// judge; the id may be a string, a number (kept as its literal text, so 5
// gives "5" and 1.50 gives "1.50") or null (""); a timestamp that is not a
// number, or that overflows float64, is ignored; null stands for an absent
// correlation_id, topic, seq or epoch. With duplicate keys the last one
// wins; keys must match exactly (case matters). Decode rejects a frame that
// is not valid UTF-8 (RFC 6455 requires text frames to be), that is not one
// JSON object with nothing but white space after it, that has no type or
// an empty one, a type that is not a string, an id that is not a string,
// number or null, a correlation_id, topic or epoch that is not a string or
// null, or a seq that is not an unsigned 64-bit integer or null. Like
// encoding/json, it allows objects and arrays nested at most 10000 deep and
// replaces escaped lone surrogates with U+FFFD.
type JSONCodec struct{}

var _ Codec = JSONCodec{}

// Name returns "json".
func (JSONCodec) Name() string { return "json" }

// Binary returns false: JSON frames are text frames.
func (JSONCodec) Binary() bool { return false }

// Encode appends the JSON frame of m to dst. It fails, returning dst
// unchanged and an error wrapping [ErrBadMessage], when m is nil, m.Type is
// empty or m.Timestamp is NaN or infinite.
func (JSONCodec) Encode(dst []byte, m *Message) ([]byte, error) {
	if m == nil {
		return dst, fmt.Errorf("%w: cannot encode a nil message", ErrBadMessage)
	}
	if m.Type == "" {
		return dst, fmt.Errorf("%w: cannot encode a message without a type", ErrBadMessage)
	}
	if math.IsNaN(m.Timestamp) || math.IsInf(m.Timestamp, 0) {
		return dst, fmt.Errorf("%w: cannot encode timestamp %v", ErrBadMessage, m.Timestamp)
	}
	dst = append(dst, `{"type":`...)
	dst = codecAppendString(dst, m.Type)
	dst = append(dst, `,"payload":`...)
	if len(m.Payload) == 0 {
		dst = append(dst, '{', '}')
	} else {
		dst = append(dst, m.Payload...)
	}
	dst = append(dst, `,"id":`...)
	dst = codecAppendString(dst, m.ID)
	dst = append(dst, `,"timestamp":`...)
	dst = codecAppendFloat(dst, m.Timestamp)
	if m.CorrelationID != "" {
		dst = append(dst, `,"correlation_id":`...)
		dst = codecAppendString(dst, m.CorrelationID)
	}
	if m.Topic != "" {
		dst = append(dst, `,"topic":`...)
		dst = codecAppendString(dst, m.Topic)
	}
	if m.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, m.Seq, 10)
	}
	if m.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = codecAppendString(dst, m.Epoch)
	}
	return append(dst, '}'), nil
}

// Decode fills m from the JSON frame; see [JSONCodec] for what it accepts.
// The decoded message keeps no reference to frame.
//
// On error, which wraps [ErrBadMessage], m is reset to the zero Message,
// except that when the frame is a well-formed JSON object whose id is a
// string or a number, m.ID is that id, so that an ERROR reply can be
// correlated with the faulty message.
func (JSONCodec) Decode(frame []byte, m *Message) error {
	if m == nil {
		return errors.New("switchboard: Decode into a nil message")
	}
	var f codecFields
	if err := f.scan(frame); err != nil {
		*m = Message{}
		return err
	}
	var msg Message
	if err := f.decode(&msg); err != nil {
		*m = Message{ID: msg.ID}
		return err
	}
	*m = msg
	return nil
}

// codecFields holds the raw values of the known fields of a frame's object,
// as sub-slices of the frame; nil for an absent field.
type codecFields struct {
	typ, payload, id, timestamp, correlationID, topic, seq, epoch []byte
}

// scan checks that frame is one JSON object in UTF-8 and records the
// values of its known fields.
func (f *codecFields) scan(frame []byte) error {
	if !utf8.Valid(frame) {
		return fmt.Errorf("%w: frame is not valid UTF-8", ErrBadMessage)
	}
	i := codecSkipSpace(frame, 0)
	if i == len(frame) {
		return fmt.Errorf("%w: empty frame", ErrBadMessage)
	}
	if frame[i] != '{' {
		return fmt.Errorf("%w: frame is not a JSON object (it starts like %s)", ErrBadMessage, codecKind(frame[i]))
	}
	i, err := codecScanObject(frame, i, 1, f)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if i = codecSkipSpace(frame, i); i != len(frame) {
		return fmt.Errorf("%w: %v", ErrBadMessage, codecErrAt(frame, i, "expecting the end of the frame after the object"))
	}
	return nil
}

// set records val as the value of the field named by the raw key (the bytes
// between the quotes; escaped tells whether they hold escapes).
func (f *codecFields) set(key []byte, escaped bool, val []byte) {
	if escaped {
		// Longest known key, "correlation_id", in \uXXXX escapes.
		const maxKey = len("correlation_id") * 6
		if len(key) > maxKey {
			return
		}
		var buf [maxKey]byte
		key = codecAppendUnquoted(buf[:0], key)
	}
	switch string(key) {
	case "type":
		f.typ = val
	case "payload":
		f.payload = val
	case "id":
		f.id = val
	case "timestamp":
		f.timestamp = val
	case "correlation_id":
		f.correlationID = val
	case "topic":
		f.topic = val
	case "seq":
		f.seq = val
	case "epoch":
		f.epoch = val
	}
}

// decode checks the recorded values and stores the message they make in
// msg, which must be zero. It decodes the id first, so that msg.ID is set
// on the other errors.
func (f *codecFields) decode(msg *Message) error {
	if f.id != nil {
		switch c := f.id[0]; {
		case c == '"':
			msg.ID = codecUnquote(f.id)
		case c == '-' || ('0' <= c && c <= '9'):
			msg.ID = string(f.id)
		case c == 'n':
		default:
			return fmt.Errorf("%w: \"id\" must be a string or a number, not %s", ErrBadMessage, codecKind(c))
		}
	}
	switch {
	case f.typ == nil || f.typ[0] == 'n':
		return fmt.Errorf("%w: missing \"type\"", ErrBadMessage)
	case f.typ[0] != '"':
		return fmt.Errorf("%w: \"type\" must be a string, not %s", ErrBadMessage, codecKind(f.typ[0]))
	case len(f.typ) == 2:
		return fmt.Errorf("%w: \"type\" is empty", ErrBadMessage)
	}
	msg.Type = codecTypeString(f.typ)
	var err error
	if msg.CorrelationID, err = codecStringField("correlation_id", f.correlationID); err != nil {
		return err
	}
	if msg.Topic, err = codecStringField("topic", f.topic); err != nil {
		return err
	}
	if msg.Epoch, err = codecStringField("epoch", f.epoch); err != nil {
		return err
	}
	if s := f.seq; s != nil && s[0] != 'n' {
		seq, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: \"seq\" must be an unsigned 64-bit integer, not %s", ErrBadMessage, codecShort(s))
		}
		msg.Seq = seq
	}
	if t := f.timestamp; t != nil && (t[0] == '-' || ('0' <= t[0] && t[0] <= '9')) {
		if ts, err := strconv.ParseFloat(string(t), 64); err == nil {
			msg.Timestamp = ts
		}
	}
	if p := f.payload; p != nil && p[0] != 'n' && !codecEmptyObject(p) {
		msg.Payload = make(json.RawMessage, len(p))
		copy(msg.Payload, p)
	}
	return nil
}

// codecStringField decodes the raw value of the string field name: "" for
// absent or null, an error for a value that is not a string.
func codecStringField(name string, raw []byte) (string, error) {
	if raw == nil || raw[0] == 'n' {
		return "", nil
	}
	if raw[0] != '"' {
		return "", fmt.Errorf("%w: %q must be a string, not %s", ErrBadMessage, name, codecKind(raw[0]))
	}
	return codecUnquote(raw), nil
}

// codecTypeString decodes a raw JSON string holding a message type, without
// allocating for the types of protocol v1.
func codecTypeString(raw []byte) string {
	switch string(raw[1 : len(raw)-1]) {
	case TypeConnect:
		return TypeConnect
	case TypeConnectAck:
		return TypeConnectAck
	case TypeAuthenticate:
		return TypeAuthenticate
	case TypeAuthenticateSuccess:
		return TypeAuthenticateSuccess
	case TypeAuthenticateFailure:
		return TypeAuthenticateFailure
	case TypeSubscribe:
		return TypeSubscribe
	case TypeSubscribeSuccess:
		return TypeSubscribeSuccess
	case TypeSubscribeFailure:
		return TypeSubscribeFailure
	case TypeUnsubscribe:
		return TypeUnsubscribe
	case TypeUnsubscribeAck:
		return TypeUnsubscribeAck
	case TypePing:
		return TypePing
	case TypePong:
		return TypePong
	case TypeAction:
		return TypeAction
	case TypeActionResult:
		return TypeActionResult
	case TypeData:
		return TypeData
	case TypeEvent:
		return TypeEvent
	case TypeNotification:
		return TypeNotification
	case TypeError:
		return TypeError
	case TypeDisconnect:
		return TypeDisconnect
	}
	return codecUnquote(raw)
}

// codecKind names the kind of JSON value that starts with c.
func codecKind(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || ('0' <= c && c <= '9'):
		return "a number"
	}
	return fmt.Sprintf("%q, which is not JSON", rune(c))
}

// codecShort quotes raw for an error message, cut short if long.
func codecShort(raw []byte) string {
	const max = 32
	if len(raw) > max {
		return strconv.Quote(string(raw[:max])) + "…"
	}
	return strconv.Quote(string(raw))
}

// codecMaxDepth is how deeply objects and arrays may nest, as in
// encoding/json.
const codecMaxDepth = 10000

// codecSyntaxError is malformed JSON at an offset.
type codecSyntaxError struct {
	off int
	msg string
}

func (e *codecSyntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

// codecErrAt reports unexpected input at data[i] (or its end) while
// expecting what.
func codecErrAt(data []byte, i int, expecting string) error {
	if i >= len(data) {
		return &codecSyntaxError{off: i, msg: "unexpected end of input, " + expecting}
	}
	r, _ := utf8.DecodeRune(data[i:])
	return &codecSyntaxError{off: i, msg: fmt.Sprintf("unexpected %q, %s", r, expecting)}
}

// codecIsSpace reports whether c is JSON white space.
func codecIsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// codecSkipSpace returns the offset of the first byte at or after i that is
// not JSON white space.
func codecSkipSpace(data []byte, i int) int {
	for i < len(data) && codecIsSpace(data[i]) {
		i++
	}
	return i
}

// codecPlain marks the bytes that stand for themselves inside a JSON
// string: all but control characters, '"' and '\\'.
var codecPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// codecScanValue checks the JSON value starting at data[i], found at the
// given depth of nesting (0 for a top-level value), and returns the offset
// just after it.
func codecScanValue(data []byte, i, depth int) (int, error) {
	if i >= len(data) {
		return i, codecErrAt(data, i, "expecting a value")
	}
	switch c := data[i]; c {
	case '"':
		end, _, err := codecScanString(data, i)
		return end, err
	case '{':
		return codecScanObject(data, i, depth+1, nil)
	case '[':
		return codecScanArray(data, i, depth+1)
	case 't':
		return codecScanLiteral(data, i, "true")
	case 'f':
		return codecScanLiteral(data, i, "false")
	case 'n':
		return codecScanLiteral(data, i, "null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return codecScanNumber(data, i)
		}
		return i, codecErrAt(data, i, "expecting a value")
	}
}

// codecScanLiteral checks that lit is at data[i].
func codecScanLiteral(data []byte, i int, lit string) (int, error) {
	for j := 0; j < len(lit); j++ {
		if i+j >= len(data) || data[i+j] != lit[j] {
			return i + j, codecErrAt(data, i+j, "in literal "+lit)
		}
	}
	return i + len(lit), nil
}

// codecScanNumber checks the JSON number starting at data[i].
func codecScanNumber(data []byte, i int) (int, error) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i = codecScanDigits(data, i+1)
	default:
		return i, codecErrAt(data, i, "expecting a digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return i, codecErrAt(data, i, "expecting a digit after the decimal point")
		}
		i = codecScanDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return i, codecErrAt(data, i, "expecting a digit in the exponent")
		}
		i = codecScanDigits(data, i+1)
	}
	return i, nil
}

// codecScanDigits skips the decimal digits at data[i:].
func codecScanDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// codecScanString checks the JSON string starting with the quote at
// data[i]. It returns the offset just after the closing quote and whether
// the string holds escapes.
func codecScanString(data []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		for i < len(data) && codecPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			return i, escaped, codecErrAt(data, i, "in a string")
		}
		switch data[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(data) {
				return i + 1, escaped, codecErrAt(data, i+1, "in an escape")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(data) || codecHexValue(data[j]) < 0 {
						return j, escaped, codecErrAt(data, j, "expecting a hexadecimal digit in a \\u escape")
					}
				}
				i += 6
			default:
				return i + 1, escaped, codecErrAt(data, i+1, "in an escape")
			}
		default:
			return i, escaped, &codecSyntaxError{off: i, msg: fmt.Sprintf("control character %#02x in a string", data[i])}
		}
	}
}

// codecHexValue is the value of the hexadecimal digit c, or -1.
func codecHexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// codecScanArray checks the JSON array starting at data[i], at the given
// depth of nesting.
func codecScanArray(data []byte, i, depth int) (int, error) {
	if depth > codecMaxDepth {
		return i, &codecSyntaxError{off: i, msg: "objects and arrays nested too deeply"}
	}
	i = codecSkipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = codecScanValue(data, i, depth); err != nil {
			return i, err
		}
		i = codecSkipSpace(data, i)
		if i >= len(data) {
			return i, codecErrAt(data, i, "expecting ',' or ']' in an array")
		}
		switch data[i] {
		case ',':
			i = codecSkipSpace(data, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, codecErrAt(data, i, "expecting ',' or ']' in an array")
		}
	}
}

// codecScanObject checks the JSON object starting at data[i], at the given
// depth of nesting. If f is not nil, it records there the values of the
// known fields.
func codecScanObject(data []byte, i, depth int, f *codecFields) (int, error) {
	if depth > codecMaxDepth {
		return i, &codecSyntaxError{off: i, msg: "objects and arrays nested too deeply"}
	}
	i = codecSkipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return i, codecErrAt(data, i, "expecting a string as an object key")
		}
		keyStart := i
		var escaped bool
		var err error
		if i, escaped, err = codecScanString(data, i); err != nil {
			return i, err
		}
		key := data[keyStart+1 : i-1]
		i = codecSkipSpace(data, i)
		if i >= len(data) || data[i] != ':' {
			return i, codecErrAt(data, i, "expecting ':' after an object key")
		}
		i = codecSkipSpace(data, i+1)
		valStart := i
		if i, err = codecScanValue(data, i, depth); err != nil {
			return i, err
		}
		if f != nil {
			f.set(key, escaped, data[valStart:i])
		}
		i = codecSkipSpace(data, i)
		if i >= len(data) {
			return i, codecErrAt(data, i, "expecting ',' or '}' in an object")
		}
		switch data[i] {
		case ',':
			i = codecSkipSpace(data, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, codecErrAt(data, i, "expecting ',' or '}' in an object")
		}
	}
}

// codecEmptyObject reports whether raw, a valid JSON value, is an object
// without members.
func codecEmptyObject(raw []byte) bool {
	return raw[0] == '{' && codecSkipSpace(raw, 1) == len(raw)-1
}

// codecUnquote decodes raw, a valid JSON string (quotes included) in valid
// UTF-8.
func codecUnquote(raw []byte) string {
	s := raw[1 : len(raw)-1]
	for _, c := range s {
		if c == '\\' {
			return string(codecAppendUnquoted(make([]byte, 0, len(s)), s))
		}
	}
	return string(s)
}

// codecAppendUnquoted appends the decoded form of s, the inside of a valid
// JSON string, to dst. As in encoding/json, an escaped surrogate that is
// not part of a valid pair and a byte of invalid UTF-8 become U+FFFD.
func codecAppendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				dst = append(dst, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(s[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := codecHex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, codecHex4(s[i+2:])); pair != utf8.RuneError {
						dst = utf8.AppendRune(dst, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// codecHex4 is the value of the four hexadecimal digits at the start of s,
// or -1 if there are none.
func codecHex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		v := codecHexValue(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// codecHexDigits are the digits of the \u escapes that Encode writes.
const codecHexDigits = "0123456789abcdef"

// codecAppendString appends s to dst as a JSON string, escaped as described
// on JSONCodec.
func codecAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if codecPlain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', codecHexDigits[c>>4], codecHexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', codecHexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// codecAppendFloat appends f, which is finite, to dst as a JSON number in
// the shortest form that reads back as f: plain decimal notation, or
// exponent notation for very small and very large magnitudes.
func codecAppendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs == 0 || (abs >= 1e-6 && abs < 1e21) {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
	// Shorten a two-digit negative exponent such as e-07 to e-7.
	if n := len(dst); dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst
}
