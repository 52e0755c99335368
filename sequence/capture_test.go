package sequence

import (
	"fmt"
	"strings"
	"testing"

	"github.com/minint/minint/generalize"
)

func TestCaptureImageLoad(t *testing.T) {
	seq, err := LoadFile("testdata/capture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := seq.Steps[0].(*CaptureImage)
	want := generalize.DefaultOptions()
	want.Logs = false
	if a.Generalize != want || !a.Check || a.Compression != "lzx" || a.WorkDir != "/tmp" || a.Source.OS != "debian" ||
		a.ImageName != "Debian reference" || a.ExtraExclusions[0] != "/srv/cache/*" || a.Destination.URL == "" {
		t.Errorf("step 1: %+v", a)
	}
	b := seq.Steps[1].(*CaptureImage)
	if b.Check || !b.InPlace || b.Generalize != generalize.DefaultOptions() || b.Destination.SplitSize != 3900<<20 ||
		b.Destination.Disk == nil || b.Destination.Disk.Removable == nil || b.Destination.Partition != 1 {
		t.Errorf("step 2: %+v", b)
	}
	if d := b.Describe(); !strings.Contains(d, "IN PLACE") {
		t.Errorf("describe: %s", d)
	}
	step := head + "  - type: capture-image\n"
	for _, c := range []struct {
		src  string
		line int
		want string
	}{
		{step, 3, "needs destination"},
		{step + "    destination: {url: http://h/x.wim, disk: {removable: true}}\n", 4, "exclude each other"},
		{step + "    destination: {url: http://h/dir/}\n", 4, "must name the file"},
		{step + "    destination: {url: ftp://h/x.wim}\n", 4, "not an http(s) URL"},
		{step + "    destination: {disk: {removable: true}, path: images/x.wim}\n", 4, "absolute"},
		{step + "    destination: {disk: {removable: true}, path: /x.wim, split-size: 1K}\n", 4, "split-size 1KiB (1024 bytes) is too small: at least 1MiB (1048576 bytes)"},
		{step + "    destination: {url: http://h/x.wim, split-size: 1G}\n", 4, "for disk destinations"},
		{step + "    compression: lzms\n    destination: {url: http://h/x.wim}\n", 4, "want none, xpress or lzx"},
		{step + "    generalize: {logz: false}\n    destination: {url: http://h/x.wim}\n", 4, "logz"},
	} {
		_, err := Parse("s.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fmt.Sprintf(":%d:", c.line)) {
			t.Errorf("%q: got %v, want line %d %q", c.src, err, c.line, c.want)
		}
	}
}

func TestCaptureSequence(t *testing.T) {
	b, err := Capture("http://10.0.2.2:8080/images/ref \"x\".wim", "xpress")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := Parse("s", b)
	if err != nil {
		t.Fatal(err)
	}
	c := seq.Steps[1].(*CaptureImage)
	if c.Destination.URL != "http://10.0.2.2:8080/images/ref \"x\".wim" || c.Compression != "xpress" || !c.Check ||
		c.Generalize != generalize.DefaultOptions() || seq.Steps[2].Base().Type != "poweroff" {
		t.Errorf("%s\n%+v", b, c)
	}
	for _, bad := range []string{"", "http://h/", "file:///x.wim"} {
		if _, err := Capture(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Capture("http://h/x.wim", "lzms"); err == nil {
		t.Error("lzms accepted")
	}
}
