package main

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func TestGRPCTimeoutHeaderHasAtMostEightDigits(t *testing.T) {
	cases := map[time.Duration]string{
		0:                           "1m",
		1500 * time.Microsecond:     "1m",
		2 * time.Second:             "2000m",
		99999999 * time.Millisecond: "99999999m",
		100000 * time.Second:        "100000S",
	}
	for d, want := range cases {
		if got := grpcTimeout(d); got != want {
			t.Errorf("grpcTimeout(%s) = %q, want %q", d, got, want)
		}
	}
}

func frame(payload []byte) []byte {
	out := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(payload)))
	return append(out, payload...)
}

func TestFirstMessage(t *testing.T) {
	msg, err := firstMessage(append(frame([]byte{8, 1}), frame([]byte{8, 2})...))
	if err != nil || string(msg) != string([]byte{8, 1}) {
		t.Errorf("two frames: %v, %v", msg, err)
	}
	if msg, err := firstMessage(frame(nil)); err != nil || len(msg) != 0 {
		t.Errorf("empty message: %v, %v", msg, err)
	}
	compressed := frame([]byte{8, 1})
	compressed[0] = 1
	for name, body := range map[string][]byte{
		"no message": {0, 0},
		"compressed": compressed,
		"truncated":  frame([]byte{8, 1})[:6],
	} {
		if _, err := firstMessage(body); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestVarintFieldSkipsOtherFieldsAndKeepsTheLast(t *testing.T) {
	msg := []byte{
		0x0a, 0x02, 'h', 'i', // field 1, length-delimited "hi"
		0x11, 1, 2, 3, 4, 5, 6, 7, 8, // field 2, fixed64
		0x1d, 1, 2, 3, 4, // field 3, fixed32
		0x08, 0x02, // field 1 as varint 2 (a later value wins)
		0x20, 0x96, 0x01, // field 4, varint 150
		0x08, 0x01, // field 1 = 1
	}
	if v, err := varintField(msg, 1); err != nil || v != 1 {
		t.Errorf("field 1: %d, %v", v, err)
	}
	if v, err := varintField(msg, 4); err != nil || v != 150 {
		t.Errorf("field 4: %d, %v", v, err)
	}
	if v, err := varintField(msg, 9); err != nil || v != 0 {
		t.Errorf("absent field: %d, %v (proto3 reads it as 0)", v, err)
	}
	for name, bad := range map[string][]byte{
		"bad field key":                    {0x80},
		"bad varint":                       {0x08, 0x80},
		"truncated fixed64":                {0x11, 1, 2},
		"truncated length-delimited field": {0x0a, 0x05, 'x'},
		"truncated fixed32":                {0x1d, 1},
		"unsupported wire type":            {0x0b},
	} {
		if _, err := varintField(bad, 1); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestEnumName(t *testing.T) {
	if got := enumName(servingStatusNames[:], statusServing); got != "SERVING" {
		t.Errorf("SERVING: %q", got)
	}
	if got := enumName(grpcCodeNames[:], 99); got != "99" {
		t.Errorf("unknown value: %q", got)
	}
}
