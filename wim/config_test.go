package wim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCaptureConfig(t *testing.T) {
	cfg, err := ParseCaptureConfig(strings.NewReader(`
; comment
[ExclusionList]
/proc
\sys
C:\minint\*
*.tmp
/var/cache/apt/archives/*.deb
[ExclusionException]
/minint/keep
[CompressionExclusionList]
*.zip
`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/proc":                             true,
		"/proc/1/status":                    true,
		"/procfs":                           false,
		"/sys/kernel":                       true,
		"/minint/x":                         true,
		"/minint":                           false,
		"/minint/keep":                      false,
		"/minint/keep/sub":                  false,
		"/a/b/c.tmp":                        true,
		"/a/b/c.tmpx":                       false,
		"/var/cache/apt/archives/x.deb":     true,
		"/var/cache/apt/archives/partial/x": false,
		"/var/cache/apt/archives/lock":      false,
		"/x.zip":                            false,
	} {
		if got := cfg.Excluded(path); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
		}
	}
	for _, bad := range []string{"/proc\n", "[Bogus]\n/x\n", "[ExclusionList\n"} {
		if _, err := ParseCaptureConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestCaptureWithExclusions(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	for _, p := range []string{"proc/1/status", "etc/passwd", "minint/log", "minint/keep/x", "a.tmp"} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(p), 0o644)
	}
	cfg, err := ParseCaptureConfig(strings.NewReader("[ExclusionList]\n/proc\n/minint\n*.tmp\n[ExclusionException]\n/minint/keep\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{}, ImageOptions{Config: cfg})
	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	var got []string
	img.Walk(func(p string, f *File) error {
		got = append(got, p)
		return nil
	})
	want := "/ /etc /etc/passwd /minint /minint/keep /minint/keep/x"
	if strings.Join(got, " ") != want {
		t.Errorf("captured %v, want %s", got, want)
	}
}

// Capturing a tree that contains the WIM being written leaves the WIM out
// instead of failing on a file that grows while it is read.
func TestCaptureSkipsOwnOutput(t *testing.T) {
	tmp := t.TempDir()
	os.WriteFile(filepath.Join(tmp, "f"), []byte("x"), 0o644)
	w := filepath.Join(tmp, "self.wim")
	capture(t, tmp, w, WriterOptions{}, ImageOptions{})
	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	if _, err := img.Lookup("/self.wim"); err == nil {
		t.Fatal("the output WIM was captured into itself")
	}
	if _, err := img.Lookup("/f"); err != nil {
		t.Fatal(err)
	}
}
