package switchboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// codecTestPayload is a typical 128-byte DATA payload.
const codecTestPayload = `{"resource":"user","data":{"id":12345,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","editor"],"active":true}}`

// codecTestMessage is a typical DATA message, as the server sends it.
func codecTestMessage() *Message {
	return &Message{
		Type:      TypeData,
		Payload:   json.RawMessage(codecTestPayload),
		ID:        "550e8400-e29b-41d4-a716-446655440000",
		Timestamp: 1619712345.123,
		Topic:     "user:12345:updates",
	}
}

func TestJSONCodecNameBinary(t *testing.T) {
	var c Codec = JSONCodec{}
	if c.Name() != "json" {
		t.Errorf("Name() = %q, want \"json\"", c.Name())
	}
	if c.Binary() {
		t.Error("Binary() = true, want false")
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{
			name: "typical data",
			m: Message{
				Type:      TypeData,
				Payload:   json.RawMessage(`{"resource":"user","data":{"id":1}}`),
				ID:        "550e8400-e29b-41d4-a716-446655440000",
				Timestamp: 1619712345.123,
				Topic:     "user:1:updates",
			},
			want: `{"type":"DATA","payload":{"resource":"user","data":{"id":1}},"id":"550e8400-e29b-41d4-a716-446655440000","timestamp":1619712345.123,"topic":"user:1:updates"}`,
		},
		{
			name: "nil payload, empty id, zero timestamp",
			m:    Message{Type: TypePing},
			want: `{"type":"PING","payload":{},"id":"","timestamp":0}`,
		},
		{
			name: "empty non-nil payload",
			m:    Message{Type: TypePong, Payload: json.RawMessage{}, ID: "p", Timestamp: 1},
			want: `{"type":"PONG","payload":{},"id":"p","timestamp":1}`,
		},
		{
			name: "all fields",
			m: Message{
				Type:          TypeActionResult,
				Payload:       json.RawMessage(`{"ok":true}`),
				ID:            "a",
				Timestamp:     1619712345.5,
				CorrelationID: "c",
				Topic:         "t",
				Seq:           42,
				Epoch:         "e1",
			},
			want: `{"type":"ACTION_RESULT","payload":{"ok":true},"id":"a","timestamp":1619712345.5,"correlation_id":"c","topic":"t","seq":42,"epoch":"e1"}`,
		},
		{
			name: "max seq",
			m:    Message{Type: TypeData, ID: "x", Timestamp: 2, Seq: math.MaxUint64},
			want: `{"type":"DATA","payload":{},"id":"x","timestamp":2,"seq":18446744073709551615}`,
		},
		{
			name: "payload verbatim",
			m:    Message{Type: "X", Payload: json.RawMessage(`{ "a" : [1, 2.50, "<&>"] }`), ID: "i", Timestamp: 3},
			want: `{"type":"X","payload":{ "a" : [1, 2.50, "<&>"] },"id":"i","timestamp":3}`,
		},
		{
			name: "escaping",
			m: Message{
				Type:          `A"B\C/D`,
				ID:            "\n\t\r\b\f\x00\x1f\x7f",
				Timestamp:     1,
				CorrelationID: "<b>&amp;</b>",
				Topic:         "é😀\u2028\u2029",
				Epoch:         "bad\xffutf8\xc3",
			},
			want: `{"type":"A\"B\\C/D","payload":{},"id":"\n\t\r\b\f\u0000\u001f` + "\x7f" + `","timestamp":1,"correlation_id":"<b>&amp;</b>","topic":"é😀\u2028\u2029","epoch":"bad\ufffdutf8\ufffd"}`,
		},
		{
			name: "timestamp forms",
			m:    Message{Type: "T", ID: "i", Timestamp: 1e21, CorrelationID: "c"},
			want: `{"type":"T","payload":{},"id":"i","timestamp":1e+21,"correlation_id":"c"}`,
		},
		{
			name: "small timestamp",
			m:    Message{Type: "T", ID: "i", Timestamp: -1e-7},
			want: `{"type":"T","payload":{},"id":"i","timestamp":-1e-7}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := JSONCodec{}.Encode(nil, &tt.m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Encode =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("Encode produced invalid JSON: %s", got)
			}
		})
	}
}

func TestEncodeAppends(t *testing.T) {
	dst := []byte("prefix|")
	got, err := JSONCodec{}.Encode(dst, &Message{Type: TypePing, ID: "1", Timestamp: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `prefix|{"type":"PING","payload":{},"id":"1","timestamp":1}`; string(got) != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		want string
	}{
		{"nil message", nil, "nil message"},
		{"empty type", &Message{ID: "x", Timestamp: 1}, "without a type"},
		{"NaN timestamp", &Message{Type: "X", Timestamp: math.NaN()}, "timestamp NaN"},
		{"+Inf timestamp", &Message{Type: "X", Timestamp: math.Inf(1)}, "timestamp +Inf"},
		{"-Inf timestamp", &Message{Type: "X", Timestamp: math.Inf(-1)}, "timestamp -Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := JSONCodec{}.Encode(dst, tt.m)
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error = %v, want one wrapping ErrBadMessage", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to mention %q", err, tt.want)
			}
			if string(got) != "keep" {
				t.Errorf("dst = %q, want it unchanged", got)
			}
		})
	}
}

// codecStdlibString is s as encoding/json writes it without HTML escaping.
func codecStdlibString(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendStringMatchesStdlib(t *testing.T) {
	inputs := []string{
		"", "plain", `"`, `\`, "/", "<>&", "\u2028", "\u2029", "\x7f", "\ufffd",
		"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xffb\xfe",
		"héllo wörld", "日本語", "😀", "\x00\x01\x02\x1e\x1f", "\b\f\n\r\t",
	}
	for c := 0; c < 0x80; c++ {
		inputs = append(inputs, string(rune(c)))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		got := string(codecAppendString(nil, s))
		if want := codecStdlibString(t, s); got != want {
			t.Errorf("codecAppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\u2028", "\xff\xfe", "é😀", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(codecAppendString(nil, s))
		if want := codecStdlibString(t, s); got != want {
			t.Errorf("codecAppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendFloatMatchesStdlib(t *testing.T) {
	floats := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 1619712345.123, 1619712345.1, 1619712345,
		1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789e13, math.MaxFloat64,
		math.SmallestNonzeroFloat64, -math.MaxFloat64, 5e-324, 1.5e-300, 2.5e300,
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		floats = append(floats, f, float64(r.Int64N(1<<41))/1000)
	}
	for _, f := range floats {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := codecAppendFloat(nil, f); string(got) != string(want) {
			t.Errorf("codecAppendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

// codecDecodeOK are frames that Decode accepts, with the message they give.
var codecDecodeOK = []struct {
	name string
	in   string
	want Message
}{
	{
		name: "typical",
		in:   `{"type": "DATA", "payload": {"resource": "user", "data": {"id": 1}}, "id": "550e8400-e29b-41d4-a716-446655440000", "timestamp": 1619712345.123, "correlation_id": "c-1", "topic": "user:1:updates"}`,
		want: Message{Type: TypeData, Payload: json.RawMessage(`{"resource": "user", "data": {"id": 1}}`), ID: "550e8400-e29b-41d4-a716-446655440000", Timestamp: 1619712345.123, CorrelationID: "c-1", Topic: "user:1:updates"},
	},
	{name: "minimal", in: `{"type":"PING"}`, want: Message{Type: TypePing}},
	{name: "white space", in: " \t\r\n{ \"type\" :\n\"PING\" ,\t\"id\" : \"x\" }\r\n ", want: Message{Type: TypePing, ID: "x"}},
	{name: "unknown type", in: `{"type":"CUSTOM_THING"}`, want: Message{Type: "CUSTOM_THING"}},
	{name: "all fields", in: `{"type":"DATA","payload":{"a":1},"id":"i","timestamp":12.5,"correlation_id":"c","topic":"t","seq":42,"epoch":"e"}`,
		want: Message{Type: TypeData, Payload: json.RawMessage(`{"a":1}`), ID: "i", Timestamp: 12.5, CorrelationID: "c", Topic: "t", Seq: 42, Epoch: "e"}},
	// payload
	{name: "payload missing", in: `{"type":"X"}`, want: Message{Type: "X"}},
	{name: "payload null", in: `{"type":"X","payload":null}`, want: Message{Type: "X"}},
	{name: "payload empty object", in: `{"type":"X","payload":{}}`, want: Message{Type: "X"}},
	{name: "payload empty object with space", in: `{"type":"X","payload":{ ` + "\n" + ` }}`, want: Message{Type: "X"}},
	{name: "payload array", in: `{"type":"X","payload":[1, 2]}`, want: Message{Type: "X", Payload: json.RawMessage(`[1, 2]`)}},
	{name: "payload string", in: `{"type":"X","payload":"hi"}`, want: Message{Type: "X", Payload: json.RawMessage(`"hi"`)}},
	{name: "payload number", in: `{"type":"X","payload":-1.5e3}`, want: Message{Type: "X", Payload: json.RawMessage(`-1.5e3`)}},
	{name: "payload boolean", in: `{"type":"X","payload":false}`, want: Message{Type: "X", Payload: json.RawMessage(`false`)}},
	{name: "payload kept verbatim", in: `{"type":"X","payload": { "a" : [ 1 , {"b":"\u00e9"} ] } ,"id":"1"}`,
		want: Message{Type: "X", Payload: json.RawMessage(`{ "a" : [ 1 , {"b":"\u00e9"} ] }`), ID: "1"}},
	{name: "payload deeply nested", in: `{"type":"X","payload":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`,
		want: Message{Type: "X", Payload: json.RawMessage(`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)}},
	// id
	{name: "id uuid", in: `{"type":"X","id":"550e8400-e29b-41d4-a716-446655440000"}`, want: Message{Type: "X", ID: "550e8400-e29b-41d4-a716-446655440000"}},
	{name: "id 32 hex", in: `{"type":"X","id":"0123456789abcdef0123456789ABCDEF"}`, want: Message{Type: "X", ID: "0123456789abcdef0123456789ABCDEF"}},
	{name: "id any string", in: `{"type":"X","id":"my id #1"}`, want: Message{Type: "X", ID: "my id #1"}},
	{name: "id empty string", in: `{"type":"X","id":""}`, want: Message{Type: "X"}},
	{name: "id integer", in: `{"type":"X","id":5}`, want: Message{Type: "X", ID: "5"}},
	{name: "id decimal", in: `{"type":"X","id":1.50}`, want: Message{Type: "X", ID: "1.50"}},
	{name: "id negative exponent", in: `{"type":"X","id":-3E+2}`, want: Message{Type: "X", ID: "-3E+2"}},
	{name: "id zero", in: `{"type":"X","id":0}`, want: Message{Type: "X", ID: "0"}},
	{name: "id huge number", in: `{"type":"X","id":123456789012345678901234567890}`, want: Message{Type: "X", ID: "123456789012345678901234567890"}},
	{name: "id null", in: `{"type":"X","id":null}`, want: Message{Type: "X"}},
	{name: "id escaped", in: `{"type":"X","id":"a\u0062c\n"}`, want: Message{Type: "X", ID: "abc\n"}},
	// timestamp
	{name: "timestamp integer", in: `{"type":"X","timestamp":1619712345}`, want: Message{Type: "X", Timestamp: 1619712345}},
	{name: "timestamp negative", in: `{"type":"X","timestamp":-1.5}`, want: Message{Type: "X", Timestamp: -1.5}},
	{name: "timestamp exponent", in: `{"type":"X","timestamp":1.619712345123e9}`, want: Message{Type: "X", Timestamp: 1619712345.123}},
	{name: "timestamp string ignored", in: `{"type":"X","timestamp":"1619712345"}`, want: Message{Type: "X"}},
	{name: "timestamp boolean ignored", in: `{"type":"X","timestamp":true}`, want: Message{Type: "X"}},
	{name: "timestamp null ignored", in: `{"type":"X","timestamp":null}`, want: Message{Type: "X"}},
	{name: "timestamp object ignored", in: `{"type":"X","timestamp":{"s":1}}`, want: Message{Type: "X"}},
	{name: "timestamp overflow ignored", in: `{"type":"X","timestamp":1e400}`, want: Message{Type: "X"}},
	// correlation_id, topic, seq, epoch
	{name: "correlation_id", in: `{"type":"X","correlation_id":"550e8400-e29b-41d4-a716-446655440000"}`, want: Message{Type: "X", CorrelationID: "550e8400-e29b-41d4-a716-446655440000"}},
	{name: "correlation_id null", in: `{"type":"X","correlation_id":null}`, want: Message{Type: "X"}},
	{name: "topic", in: `{"type":"X","topic":"chat:room/1"}`, want: Message{Type: "X", Topic: "chat:room/1"}},
	{name: "topic null", in: `{"type":"X","topic":null}`, want: Message{Type: "X"}},
	{name: "seq max", in: `{"type":"X","seq":18446744073709551615}`, want: Message{Type: "X", Seq: math.MaxUint64}},
	{name: "seq zero", in: `{"type":"X","seq":0}`, want: Message{Type: "X"}},
	{name: "seq null", in: `{"type":"X","seq":null}`, want: Message{Type: "X"}},
	{name: "epoch", in: `{"type":"X","epoch":"2024-01"}`, want: Message{Type: "X", Epoch: "2024-01"}},
	{name: "epoch null", in: `{"type":"X","epoch":null}`, want: Message{Type: "X"}},
	// unknown fields, keys
	{name: "extra fields ignored", in: `{"version":1,"type":"X","meta":{"a":[1,{"b":null}]},"flags":[true,false],"x":"y"}`, want: Message{Type: "X"}},
	{name: "keys are case-sensitive", in: `{"type":"X","Type":5,"ID":true,"Payload":1,"Topic":[]}`, want: Message{Type: "X"}},
	{name: "escaped key", in: `{"typ\u0065":"PING","\u0069d":"k"}`, want: Message{Type: TypePing, ID: "k"}},
	{name: "long unknown escaped key", in: `{"type":"X","` + strings.Repeat(`\u0061`, 40) + `":1}`, want: Message{Type: "X"}},
	{name: "duplicate key last wins", in: `{"type":"A","type":"B"}`, want: Message{Type: "B"}},
	{name: "duplicate key invalid then valid", in: `{"type":5,"type":"B","id":{},"id":"i"}`, want: Message{Type: "B", ID: "i"}},
	{name: "duplicate key then null", in: `{"type":"X","id":"x","id":null}`, want: Message{Type: "X"}},
	// strings
	{name: "unicode", in: `{"type":"\u00e9\ud83d\ude00 日本"}`, want: Message{Type: "é😀 日本"}},
	{name: "lone surrogate", in: `{"type":"\ud800"}`, want: Message{Type: "\ufffd"}},
	{name: "lone surrogate then escape", in: `{"type":"\ud800\u0041"}`, want: Message{Type: "\ufffdA"}},
	{name: "reversed surrogates", in: `{"type":"\udc00\ud800x"}`, want: Message{Type: "\ufffd\ufffdx"}},
	{name: "short escapes", in: `{"type":"\"\\\/\b\f\n\r\t"}`, want: Message{Type: "\"\\/\b\f\n\r\t"}},
	{name: "escaped type name", in: `{"type":"\u0044ATA"}`, want: Message{Type: TypeData}},
	{name: "line separators", in: "{\"type\":\"a\u2028b\u2029c\"}", want: Message{Type: "a\u2028b\u2029c"}},
}

// codecDecodeBad are frames that Decode rejects, with part of the reason it
// gives.
var codecDecodeBad = []struct {
	name string
	in   string
	want string
}{
	{"empty", "", "empty frame"},
	{"only space", " \n\t", "empty frame"},
	{"not json", "hello", "not a JSON object"},
	{"array", `[{"type":"X"}]`, "not a JSON object (it starts like an array)"},
	{"string", `"DATA"`, "not a JSON object (it starts like a string)"},
	{"number", `5`, "not a JSON object (it starts like a number)"},
	{"null", `null`, "not a JSON object (it starts like null)"},
	{"boolean", `true`, "not a JSON object (it starts like a boolean)"},
	{"invalid utf-8", "{\"type\":\"\xff\"}", "not valid UTF-8"},
	{"invalid utf-8 in unknown field", "{\"type\":\"X\",\"x\":\"\xc3\"}", "not valid UTF-8"},
	{"unterminated object", `{`, "invalid JSON"},
	{"unterminated after value", `{"type":"PING"`, "unexpected end of input"},
	{"unterminated string", `{"type":"PING`, "in a string"},
	{"trailing comma", `{"type":"PING",}`, "expecting a string as an object key"},
	{"missing colon", `{"type" "PING"}`, "expecting ':'"},
	{"missing value", `{"type":}`, "expecting a value"},
	{"single quotes", `{"type":'PING'}`, "expecting a value"},
	{"unquoted key", `{type:"PING"}`, "expecting a string as an object key"},
	{"trailing brace", `{"type":"PING"}}`, "expecting the end of the frame"},
	{"two objects", `{"type":"PING"} {"type":"PONG"}`, "expecting the end of the frame"},
	{"trailing garbage", `{"type":"PING"}x`, "offset 15"},
	{"raw newline in string", "{\"type\":\"A\nB\"}", "control character 0x0a"},
	{"bad escape", `{"type":"\x41"}`, "in an escape"},
	{"single quote escape", `{"type":"\'"}`, "in an escape"},
	{"bad unicode escape", `{"type":"\u12G4"}`, "hexadecimal digit"},
	{"short unicode escape", `{"type":"\u12"}`, "hexadecimal digit"},
	{"leading zero", `{"type":"X","id":01}`, "expecting ',' or '}'"},
	{"bare minus", `{"type":"X","id":-}`, "expecting a digit"},
	{"no fraction digits", `{"type":"X","id":1.}`, "after the decimal point"},
	{"no exponent digits", `{"type":"X","id":1e}`, "in the exponent"},
	{"leading dot", `{"type":"X","id":.5}`, "expecting a value"},
	{"plus sign", `{"type":"X","id":+1}`, "expecting a value"},
	{"NaN", `{"type":"X","timestamp":NaN}`, "expecting a value"},
	{"bad literal", `{"type":"X","x":tru}`, "in literal true"},
	{"bad literal tail", `{"type":"X","x":nulll}`, "expecting ',' or '}'"},
	{"invalid payload", `{"type":"X","payload":{"a":}}`, "expecting a value"},
	{"invalid array", `{"type":"X","payload":[1,]}`, "expecting a value"},
	{"array without comma", `{"type":"X","payload":[1 2]}`, "expecting ',' or ']'"},
	{"too deep", `{"type":"X","payload":` + strings.Repeat("[", codecMaxDepth) + strings.Repeat("]", codecMaxDepth) + `}`, "nested too deeply"},
	{"type missing", `{}`, `missing "type"`},
	{"type missing with payload", `{"payload":{"type":"X"}}`, `missing "type"`},
	{"type null", `{"type":null}`, `missing "type"`},
	{"type empty", `{"type":""}`, `"type" is empty`},
	{"type number", `{"type":5}`, `"type" must be a string, not a number`},
	{"type array", `{"type":["DATA"]}`, `"type" must be a string, not an array`},
	{"type object", `{"type":{}}`, `"type" must be a string, not an object`},
	{"type boolean", `{"type":true}`, `"type" must be a string, not a boolean`},
	{"duplicate type last invalid", `{"type":"X","type":1}`, `"type" must be a string`},
	{"id boolean", `{"type":"X","id":true}`, `"id" must be a string or a number, not a boolean`},
	{"id object", `{"type":"X","id":{}}`, `"id" must be a string or a number, not an object`},
	{"id array", `{"type":"X","id":["a"]}`, `"id" must be a string or a number, not an array`},
	{"correlation_id number", `{"type":"X","correlation_id":5}`, `"correlation_id" must be a string, not a number`},
	{"correlation_id object", `{"type":"X","correlation_id":{}}`, `"correlation_id" must be a string, not an object`},
	{"topic boolean", `{"type":"X","topic":true}`, `"topic" must be a string, not a boolean`},
	{"topic array", `{"type":"X","topic":["a"]}`, `"topic" must be a string, not an array`},
	{"epoch number", `{"type":"X","epoch":1}`, `"epoch" must be a string, not a number`},
	{"seq string", `{"type":"X","seq":"5"}`, `"seq" must be an unsigned 64-bit integer`},
	{"seq negative", `{"type":"X","seq":-1}`, `"seq" must be an unsigned 64-bit integer`},
	{"seq fraction", `{"type":"X","seq":1.5}`, `"seq" must be an unsigned 64-bit integer`},
	{"seq exponent", `{"type":"X","seq":1e3}`, `"seq" must be an unsigned 64-bit integer`},
	{"seq overflow", `{"type":"X","seq":18446744073709551616}`, `"seq" must be an unsigned 64-bit integer`},
}

func TestDecode(t *testing.T) {
	for _, tt := range codecDecodeOK {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := (JSONCodec{}).Decode([]byte(tt.in), &m); err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if !codecEqual(&m, &tt.want) {
				t.Errorf("Decode(%s) =\n%+v\nwant\n%+v", tt.in, m, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tt := range codecDecodeBad {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Type: "OLD", ID: "old", Payload: json.RawMessage(`{"old":1}`), Topic: "old"}
			err := (JSONCodec{}).Decode([]byte(tt.in), &m)
			if err == nil {
				t.Fatalf("Decode(%s) succeeded with %+v, want an error", tt.in, m)
			}
			if !errors.Is(err, ErrBadMessage) {
				t.Errorf("error %v does not wrap ErrBadMessage", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if want := (Message{ID: codecReferenceID([]byte(tt.in))}); !codecEqual(&m, &want) || m.Payload != nil {
				t.Errorf("m = %+v after the error, want %+v", m, want)
			}
		})
	}
}

func TestDecodeErrorKeepsID(t *testing.T) {
	tests := []struct{ in, id string }{
		{`{"type":5,"id":"abc"}`, "abc"},
		{`{"id":7,"type":""}`, "7"},
		{`{"type":"X","id":"i-1","seq":-1}`, "i-1"},
		{`{"id":"i","id":"j","topic":[]}`, "j"},
		{`{"type":"X","id":true}`, ""},
		{`{"type":"X","id":"abc",}`, ""},
		{`{"type":"X","id":"abc"} x`, ""},
	}
	for _, tt := range tests {
		m := Message{Type: "OLD", ID: "old"}
		if err := (JSONCodec{}).Decode([]byte(tt.in), &m); err == nil {
			t.Errorf("Decode(%s) succeeded", tt.in)
		}
		if want := (Message{ID: tt.id}); !codecEqual(&m, &want) {
			t.Errorf("after Decode(%s) fails, m = %+v, want %+v", tt.in, m, want)
		}
	}
}

func TestDecodeNilMessage(t *testing.T) {
	if err := (JSONCodec{}).Decode([]byte(`{"type":"X"}`), nil); err == nil {
		t.Error("Decode into nil succeeded")
	}
}

// TestDecodeMatchesReference compares Decode with a reference decoder built
// on encoding/json, on every table frame.
func TestDecodeMatchesReference(t *testing.T) {
	var frames []string
	for _, tt := range codecDecodeOK {
		frames = append(frames, tt.in)
	}
	for _, tt := range codecDecodeBad {
		frames = append(frames, tt.in)
	}
	for _, in := range frames {
		codecCheckReference(t, []byte(in))
	}
}

func TestDecodeDepthLimit(t *testing.T) {
	for _, depth := range []int{codecMaxDepth - 1, codecMaxDepth, codecMaxDepth + 1} {
		// The frame's own object is one level of nesting.
		inner := depth - 1
		frame := []byte(`{"type":"X","payload":` + strings.Repeat(`[`, inner) + strings.Repeat(`]`, inner) + `}`)
		err := JSONCodec{}.Decode(frame, new(Message))
		if valid := json.Valid(frame); valid != (err == nil) {
			t.Errorf("depth %d: json.Valid = %v, Decode error = %v", depth, valid, err)
		}
		obj := []byte(`{"type":"X","payload":` + strings.Repeat(`{"a":`, inner) + `1` + strings.Repeat(`}`, inner) + `}`)
		err = JSONCodec{}.Decode(obj, new(Message))
		if valid := json.Valid(obj); valid != (err == nil) {
			t.Errorf("object depth %d: json.Valid = %v, Decode error = %v", depth, valid, err)
		}
	}
}

func TestDecodeKeepsNoReference(t *testing.T) {
	frame := []byte(`{"type":"CUSTOM","payload":{"a":"b"},"id":"abc","topic":"t","epoch":"e","correlation_id":"c"}`)
	var m Message
	if err := (JSONCodec{}).Decode(frame, &m); err != nil {
		t.Fatal(err)
	}
	want := m
	want.Payload = bytes.Clone(m.Payload)
	for i := range frame {
		frame[i] = 'x'
	}
	if !codecEqual(&m, &want) || m.Type != "CUSTOM" || string(m.Payload) != `{"a":"b"}` {
		t.Errorf("message changed with the frame: %+v", m)
	}
}

func TestDecodeInternsTypes(t *testing.T) {
	for _, typ := range []string{
		TypeConnect, TypeConnectAck, TypeAuthenticate, TypeAuthenticateSuccess, TypeAuthenticateFailure,
		TypeSubscribe, TypeSubscribeSuccess, TypeSubscribeFailure, TypeUnsubscribe, TypeUnsubscribeAck,
		TypePing, TypePong, TypeAction, TypeActionResult, TypeData, TypeEvent, TypeNotification,
		TypeError, TypeDisconnect,
	} {
		frame := []byte(`{"type":"` + typ + `"}`)
		var m Message
		allocs := testing.AllocsPerRun(10, func() {
			if err := (JSONCodec{}).Decode(frame, &m); err != nil {
				t.Fatal(err)
			}
		})
		if m.Type != typ {
			t.Errorf("Type = %q, want %q", m.Type, typ)
		}
		if allocs != 0 {
			t.Errorf("decoding %s: %v allocations, want 0", frame, allocs)
		}
	}
}

func TestCodecAllocs(t *testing.T) {
	m := codecTestMessage()
	frame, err := JSONCodec{}.Encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { dst, _ = JSONCodec{}.Encode(dst[:0], m) }); n != 0 {
		t.Errorf("Encode: %v allocations, want 0", n)
	}
	var got Message
	// The id, the payload and the topic.
	if n := testing.AllocsPerRun(100, func() { _ = JSONCodec{}.Decode(frame, &got) }); n > 3 {
		t.Errorf("Decode: %v allocations, want at most 3", n)
	}
}

// codecEqual reports whether two messages are equal, nil and empty
// payloads aside.
func codecEqual(a, b *Message) bool {
	return a.Type == b.Type && bytes.Equal(a.Payload, b.Payload) && a.ID == b.ID &&
		a.Timestamp == b.Timestamp && a.CorrelationID == b.CorrelationID && a.Topic == b.Topic &&
		a.Seq == b.Seq && a.Epoch == b.Epoch
}

// codecReferenceDecode decodes frame the way Decode is documented to, but
// with encoding/json doing the parsing. It reports false where Decode
// should fail.
func codecReferenceDecode(frame []byte) (Message, bool) {
	var m Message
	if !utf8.Valid(frame) {
		return m, false
	}
	if t := bytes.TrimLeft(frame, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return m, false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(frame, &obj); err != nil {
		return m, false
	}
	// value decodes a field into a generic value; absent fields give nil.
	value := func(key string) (any, bool) {
		raw, ok := obj[key]
		if !ok {
			return nil, true
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		return v, true
	}
	str := func(key string, dst *string) bool {
		v, ok := value(key)
		if !ok {
			return false
		}
		switch v := v.(type) {
		case nil:
		case string:
			*dst = v
		default:
			return false
		}
		return true
	}
	if !str("type", &m.Type) || m.Type == "" {
		return m, false
	}
	if !str("correlation_id", &m.CorrelationID) || !str("topic", &m.Topic) || !str("epoch", &m.Epoch) {
		return m, false
	}
	id, ok := value("id")
	if !ok {
		return m, false
	}
	switch id := id.(type) {
	case nil:
	case string:
		m.ID = id
	case json.Number:
		m.ID = id.String()
	default:
		return m, false
	}
	if ts, _ := value("timestamp"); ts != nil {
		if n, isNum := ts.(json.Number); isNum {
			if f, err := n.Float64(); err == nil {
				m.Timestamp = f
			}
		}
	}
	if raw, ok := obj["seq"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &m.Seq); err != nil {
			return m, false
		}
	}
	if raw, ok := obj["payload"]; ok && string(raw) != "null" {
		var members map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &members) != nil || len(members) != 0 {
			m.Payload = raw
		}
	}
	return m, true
}

// codecReferenceID is the id that Decode should leave in the message after
// failing on frame: the id of a well-formed object if it is a string or a
// number.
func codecReferenceID(frame []byte) string {
	var obj map[string]json.RawMessage
	if !utf8.Valid(frame) || json.Unmarshal(frame, &obj) != nil {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(obj["id"]))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// codecCheckReference fails t if Decode and the reference decoder disagree
// on frame.
func codecCheckReference(t *testing.T, frame []byte) {
	t.Helper()
	var got Message
	err := JSONCodec{}.Decode(frame, &got)
	want, ok := codecReferenceDecode(frame)
	switch {
	case ok && err != nil:
		t.Errorf("Decode(%q) failed (%v); the reference accepts it as %+v", frame, err, want)
	case !ok && err == nil:
		t.Errorf("Decode(%q) = %+v; the reference rejects it", frame, got)
	case ok && !codecEqual(&got, &want):
		t.Errorf("Decode(%q) =\n%+v\nthe reference gives\n%+v", frame, got, want)
	}
}

// codecRandomString is a random string of valid UTF-8 with characters that
// need care.
func codecRandomString(r *rand.Rand) string {
	pieces := []string{
		"", "a", "DATA", "user:1:updates", "héllo", "日本語", `"`, `\`, "/", "\n", "\t", "\x00",
		"\x1f", "\x7f", "<>&", "\u2028", "\u2029", "😀", "\ufffd", " ", "550e8400-e29b-41d4-a716-446655440000",
	}
	var sb strings.Builder
	for range r.IntN(6) {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	return sb.String()
}

// codecRandomMessage is a random message that Encode accepts.
func codecRandomMessage(r *rand.Rand) *Message {
	payloads := []string{
		"", "{}", `{"a":1}`, codecTestPayload, `{ "nested" : { "x" : [1, 2.5e3, null, true, false, "s\u00e9"] } }`,
		`{"html":"<b>&</b>","ls":"` + "\u2028" + `"}`, `{"emoji":"😀","esc":"\ud83d\ude00"}`, `[1,2]`, `"text"`, `12`,
	}
	m := &Message{
		Type:          codecRandomString(r),
		ID:            codecRandomString(r),
		CorrelationID: codecRandomString(r),
		Topic:         codecRandomString(r),
		Epoch:         codecRandomString(r),
	}
	if m.Type == "" {
		m.Type = TypeEvent
	}
	if p := payloads[r.IntN(len(payloads))]; p != "" {
		m.Payload = json.RawMessage(p)
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		m.Timestamp = float64(r.Int64N(4e12)) / 1000
	case 2:
		m.Timestamp = r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	default:
		for {
			m.Timestamp = math.Float64frombits(r.Uint64())
			if !math.IsNaN(m.Timestamp) && !math.IsInf(m.Timestamp, 0) {
				break
			}
		}
	}
	if r.IntN(2) == 0 {
		m.Seq = r.Uint64() >> r.IntN(64)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		m := codecRandomMessage(r)
		frame, err := JSONCodec{}.Encode(nil, m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		if !json.Valid(frame) || !utf8.Valid(frame) {
			t.Fatalf("Encode(%+v) = %q, not valid JSON in UTF-8", m, frame)
		}
		var got Message
		if err := (JSONCodec{}).Decode(frame, &got); err != nil {
			t.Fatalf("Decode(%s): %v", frame, err)
		}
		want := *m
		if string(want.Payload) == "{}" {
			want.Payload = nil
		}
		if !codecEqual(&got, &want) {
			t.Fatalf("round trip of %+v via %s gave %+v", want, frame, got)
		}
		codecCheckReference(t, frame)
	}
}

func FuzzDecode(f *testing.F) {
	// Huge seeds (the deep nesting cases) would make the fuzzer spend its
	// time minimizing; TestDecodeDepthLimit covers them.
	const maxSeed = 1024
	for _, tt := range codecDecodeOK {
		if len(tt.in) <= maxSeed {
			f.Add([]byte(tt.in))
		}
	}
	for _, tt := range codecDecodeBad {
		if len(tt.in) <= maxSeed {
			f.Add([]byte(tt.in))
		}
	}
	typical, err := JSONCodec{}.Encode(nil, codecTestMessage())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(typical)
	f.Fuzz(func(t *testing.T, frame []byte) {
		m := Message{Type: "OLD", Payload: json.RawMessage(`{"old":1}`)}
		if err := (JSONCodec{}).Decode(frame, &m); err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("Decode(%q) error %v does not wrap ErrBadMessage", frame, err)
			}
			if want := (Message{ID: codecReferenceID(frame)}); !codecEqual(&m, &want) || m.Payload != nil {
				t.Fatalf("after Decode(%q) fails, m = %+v, want %+v", frame, m, want)
			}
			codecCheckReference(t, frame)
			return
		}
		codecCheckReference(t, frame)
		encoded, err := JSONCodec{}.Encode(nil, &m)
		if err != nil {
			t.Fatalf("Encode(%+v) of decoded %q: %v", m, frame, err)
		}
		if !json.Valid(encoded) || !utf8.Valid(encoded) {
			t.Fatalf("Encode(%+v) = %q, not valid JSON in UTF-8", m, encoded)
		}
		var again Message
		if err := (JSONCodec{}).Decode(encoded, &again); err != nil {
			t.Fatalf("Decode(%q) of re-encoded %q: %v", encoded, frame, err)
		}
		if !codecEqual(&m, &again) {
			t.Fatalf("%q decoded as %+v; re-encoded as %q it decodes as %+v", frame, m, encoded, again)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	m := codecTestMessage()
	dst, err := JSONCodec{}.Encode(nil, m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst, err = JSONCodec{}.Encode(dst[:0], m)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// codecStdlibMessage is Message with the tags that make encoding/json write
// the same frame as JSONCodec.
type codecStdlibMessage struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id"`
	Timestamp     float64         `json:"timestamp"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Topic         string          `json:"topic,omitempty"`
	Seq           uint64          `json:"seq,omitempty"`
	Epoch         string          `json:"epoch,omitempty"`
}

func BenchmarkEncodeStdlib(b *testing.B) {
	m := codecTestMessage()
	s := codecStdlibMessage{Type: m.Type, Payload: m.Payload, ID: m.ID, Timestamp: m.Timestamp, Topic: m.Topic}
	out, err := json.Marshal(&s)
	if err != nil {
		b.Fatal(err)
	}
	if ours, _ := (JSONCodec{}).Encode(nil, m); !bytes.Equal(out, ours) {
		b.Fatalf("encoding/json writes\n%s\nJSONCodec writes\n%s", out, ours)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	frame, err := JSONCodec{}.Encode(nil, codecTestMessage())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := (JSONCodec{}).Decode(frame, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStdlib(b *testing.B) {
	frame, err := JSONCodec{}.Encode(nil, codecTestMessage())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var s struct {
		Type          string          `json:"type"`
		Payload       json.RawMessage `json:"payload"`
		ID            json.RawMessage `json:"id"`
		Timestamp     json.RawMessage `json:"timestamp"`
		CorrelationID string          `json:"correlation_id"`
		Topic         string          `json:"topic"`
		Seq           uint64          `json:"seq"`
		Epoch         string          `json:"epoch"`
	}
	for b.Loop() {
		s.Payload, s.ID, s.Timestamp = nil, nil, nil
		if err := json.Unmarshal(frame, &s); err != nil {
			b.Fatal(err)
		}
	}
}
