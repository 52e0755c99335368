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
		first := strings.SplitN(out.String(), "\n", 2)[0]
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

func TestWimVerbsAskWhichImage(t *testing.T) {
	src, w := t.TempDir(), t.TempDir()+"/two.wim"
	for _, args := range [][]string{
		{"wim", "capture", src, w, "--name", "one"},
		{"wim", "append", src, w, "--name", "two"},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
	}
	for _, args := range [][]string{
		{"wim", "dir", w},
		{"wim", "apply", w, t.TempDir()},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "has 2 images: say which one") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 asking which image", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := runMain([]string{"wim", "dir", w, "two"}, &out, &errOut); code != 0 {
		t.Errorf("wim dir two: exit %d: %s", code, errOut.String())
	}
}
