package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpNamesEachCommandOnce(t *testing.T) {
	for _, args := range [][]string{
		{"package", "create", "--help"},
		{"wim", "apply", "--help"},
		{"disk", "list", "--help"},
		{"iso", "--help"},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		want := "Usage: minint " + strings.Join(args[:len(args)-1], " ") + " "
		first := strings.SplitN(errOut.String(), "\n", 2)[0]
		if !strings.HasPrefix(first, want) {
			t.Errorf("%v: usage line %q, want prefix %q", args, first, want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("stderr: %s", errOut.String())
	}
}
