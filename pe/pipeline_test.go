package pe

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/pe/journal"
)

// slowPkg serves a signed package with chunk hashes (32 KiB chunks) from a
// server that sends the image at about 1.5 MB/s, so that the download is
// still under way when apply-image starts. It returns the manifest URL,
// key, image bytes, package dir and a counter of image requests.
func slowPkg(t *testing.T) (string, ed25519.PublicKey, []byte, string, *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	img := make([]byte, 300000)
	rand.New(rand.NewSource(7)).Read(img)
	os.WriteFile(filepath.Join(dir, "os.wim"), img, 0o644)
	priv := mustPriv(t)
	m, mb, err := manifest.Build(dir, []string{"os.wim"}, manifest.BuildOptions{Image: &manifest.Image{File: "os.wim", Index: 2}, ChunkSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), mb, 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json.sig"), signPkg(t, m, mb, priv), 0o644)
	var reqs atomic.Int64
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".wim") {
			reqs.Add(1)
			w = &slowWriter{w}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/manifest.json", priv.Public().(ed25519.PublicKey), img, dir, &reqs
}

type slowWriter struct{ http.ResponseWriter }

func (w *slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 16<<10)
		time.Sleep(10 * time.Millisecond)
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[k:]
	}
	return n, nil
}

type event struct {
	Event, Op, State, Error string
}

func events(t *testing.T, b *bytes.Buffer) []event {
	t.Helper()
	var out []event
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

func TestPipelineDeploy(t *testing.T) {
	url, pub, img, _, _ := slowPkg(t)
	fd := newFakeDisk(t)
	seq := seqFor(t, url, "")
	env, ev := testEnv(t, fd, pub)
	var con bytes.Buffer
	env.Console = &con
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(fd.dir, "fs-root")
	applied, _ := os.ReadFile(filepath.Join(root, "applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "minint/os.wim")); !bytes.Equal(b, img) {
		t.Error("the staged image differs from the package's")
	}
	if !strings.Contains(con.String(), "downloads while the next step applies it") {
		t.Errorf("console does not say the fetch was pipelined:\n%s", con.String())
	}
	// Apply started before the download ended, and the fetch step was
	// done only after the download, before apply-image and bootfiles.
	var order []string
	for _, e := range events(t, ev) {
		switch {
		case e.Event == "progress" && strings.HasPrefix(e.Op, "apply") && e.State == "start":
			order = append(order, "apply starts")
		case e.Event == "progress" && strings.HasPrefix(e.Op, "fetch") && e.State == "done":
			order = append(order, "download verified")
		case e.Event == "step" && e.State == "done" && (e.Op == "fetch" || e.Op == "apply-image" || e.Op == "bootfiles"):
			order = append(order, e.Op+" done")
		}
	}
	want := "apply starts, download verified, fetch done, apply-image done, bootfiles done"
	if got := strings.Join(order, ", "); got != want {
		t.Errorf("events in order: %s\nwant %s", got, want)
	}
	j, err := journal.Load(filepath.Join(root, "minint", journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range j.Steps {
		if s.Status != journal.Done {
			t.Errorf("journal: %s is %s", s.Name, s.Status)
		}
	}
}

// TestPipelineFailClosed: a tampered, truncated or missing image stops the
// run before boot files, with apply-image never done and no staged image.
func TestPipelineFailClosed(t *testing.T) {
	for name, c := range map[string]struct {
		prep func(dir string)
		want error
		step string // the step the run fails in
	}{
		"tampered chunk": {func(dir string) { corrupt(t, filepath.Join(dir, "os.wim")) }, manifest.ErrChecksum, "apply-image"},
		"truncated":      {func(dir string) { os.Truncate(filepath.Join(dir, "os.wim"), 100000) }, manifest.ErrSize, "fetch"},
		"404":            {func(dir string) { os.Remove(filepath.Join(dir, "os.wim")) }, httpx.ErrNotFound, "fetch"},
	} {
		t.Run(name, func(t *testing.T) {
			url, pub, _, dir, _ := slowPkg(t)
			c.prep(dir)
			fd := newFakeDisk(t)
			env, ev := testEnv(t, fd, pub)
			err := Run(context.Background(), seqFor(t, url, ""), env)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), `"`+c.step+`"`) {
				t.Fatalf("err = %v, want %v in step %s", err, c.want, c.step)
			}
			if fd.calls["bootfiles"] != 0 {
				t.Error("boot files were written")
			}
			st := map[string]string{}
			for _, e := range events(t, ev) {
				if e.Event == "step" {
					st[e.Op] = e.State
				}
			}
			if st["fetch"] != "failed" || st["apply-image"] == "done" || st["bootfiles"] != "" {
				t.Errorf("step states %v", st)
			}
			if _, err := os.Stat(filepath.Join(fd.dir, "fs-root/minint/os.wim")); !os.IsNotExist(err) {
				t.Error("an image that failed verification is staged under its final name")
			}
			j, err := journal.Load(filepath.Join(fd.dir, "fs-root/minint", journal.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if r := j.Step("fetch"); r == nil || r.Status != "failed" || r.Error == "" {
				t.Errorf("journal's fetch record %+v", r)
			}
		})
	}
}

// TestPipelineResume crashes a pipelined run at every step boundary and in
// the middle of the download, boots again, and expects the uninterrupted
// run's end state; the download continues from the chunks already there.
func TestPipelineResume(t *testing.T) {
	url, pub, _, _, reqs := slowPkg(t)
	seq, want := uninterrupted(t, url, pub)

	type point struct{ step, at string }
	points := []point{}
	for _, st := range seq.Steps {
		points = append(points, point{st.Base().Name, "before"}, point{st.Base().Name, "after"})
	}
	points = append(points, point{"apply-image", "mid-download"})
	for _, p := range points {
		t.Run(p.step+"-"+p.at, func(t *testing.T) {
			fd := newFakeDisk(t)
			env, _ := testEnv(t, fd, pub)
			at := p.at
			if at == "mid-download" {
				at = "before"
			}
			env.hook = func(s, pt string) error {
				if s == p.step && pt == at {
					if p.at == "mid-download" {
						time.Sleep(100 * time.Millisecond) // some chunks arrive
					}
					panic(crash{s, pt})
				}
				return nil
			}
			runToCrash(t, seq, env)
			env2, _ := testEnv(t, fd, pub)
			var con bytes.Buffer
			env2.Console = &con
			before := reqs.Load()
			if err := Run(context.Background(), seq, env2); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if got := snapshot(t, filepath.Join(fd.dir, "fs-root")); got != want {
				t.Errorf("end state differs after a crash %s %s:\n%s\nwant\n%s", p.at, p.step, got, want)
			}
			if len(fd.power) != 1 {
				t.Errorf("power %v", fd.power)
			}
			if p.at == "mid-download" && !strings.Contains(con.String(), "already in the staging folder") {
				t.Errorf("the resumed download started over:\n%s", con.String())
			}
			if p.step == "fetch" && p.at == "after" && reqs.Load() != before {
				t.Errorf("a download verified before the crash was fetched again (%d requests)", reqs.Load()-before)
			}
		})
	}
}

// TestPipelineOnlyBeforeApply: auto pipelines only into an apply-image
// step right after fetch; an explicit pipeline elsewhere is refused, and
// one without chunk hashes too.
func TestPipelineOnlyBeforeApply(t *testing.T) {
	url, pub, img, _, _ := slowPkg(t)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	var con bytes.Buffer
	env.Console = &con
	// A run step between fetch and apply-image: auto stages.
	seq := seqFor(t, url, "  - type: run\n    name: between\n    shell: \"true\"\n")
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(con.String(), "downloads while") {
		t.Error("auto pipelined into a step other than apply-image")
	}
	applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root/applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	fd2 := newFakeDisk(t)
	env2, _ := testEnv(t, fd2, pub)
	seq2 := seqFor(t, url, "    mode: pipeline\n  - type: run\n    name: between\n    shell: \"true\"\n")
	if err := Run(context.Background(), seq2, env2); err == nil || !strings.Contains(err.Error(), "must be apply-image") {
		t.Errorf("explicit pipeline before a run step: %v", err)
	}
	url3, pub3, _, _ := testPkg(t, false)
	fd3 := newFakeDisk(t)
	env3, _ := testEnv(t, fd3, pub3)
	if err := Run(context.Background(), seqFor(t, url3, "    mode: pipeline\n"), env3); !errors.Is(err, manifest.ErrFormat) {
		t.Errorf("explicit pipeline without chunk hashes: %v", err)
	}
}

// TestServerIgnoresRange: over a plain server that answers every request
// with the whole file (python3 -m http.server, some proxies), mode auto
// deploys anyway — a sequential download, each chunk verified before the
// apply reads it, the whole file before boot files — and a run cut in the
// middle of the download resumes from zero. Only an explicit pipeline or
// stream mode refuses, saying why.
func TestServerIgnoresRange(t *testing.T) {
	_, pub, img, dir, _ := slowPkg(t)
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Range")
		if strings.HasSuffix(r.URL.Path, ".wim") {
			w = &slowWriter{w}
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/manifest.json"

	t.Run("auto", func(t *testing.T) {
		fd := newFakeDisk(t)
		env, _ := testEnv(t, fd, pub)
		var con bytes.Buffer
		env.Console = &con
		if err := Run(context.Background(), seqFor(t, url, ""), env); err != nil {
			t.Fatalf("%v\n%s", err, con.String())
		}
		applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root", "applied"))
		if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
			t.Errorf("applied %q, want %q", applied, want)
		}
		if !strings.Contains(con.String(), "the server ignores Range requests") {
			t.Errorf("console does not say the server ignores Range:\n%s", con.String())
		}
	})
	t.Run("resume", func(t *testing.T) {
		seq := seqFor(t, url, "")
		fd := newFakeDisk(t)
		env, _ := testEnv(t, fd, pub)
		env.hook = func(s, pt string) error {
			if s == "apply-image" && pt == "before" {
				time.Sleep(100 * time.Millisecond) // some chunks arrive
				panic(crash{s, pt})
			}
			return nil
		}
		runToCrash(t, seq, env)
		part, err := os.Stat(filepath.Join(fd.dir, "fs-root/minint/os.wim.part"))
		if err != nil || part.Size() == 0 || part.Size() >= int64(len(img)) {
			t.Fatalf("no partial download at the crash: %v", err)
		}
		env2, _ := testEnv(t, fd, pub)
		var con bytes.Buffer
		env2.Console = &con
		if err := Run(context.Background(), seq, env2); err != nil {
			t.Fatalf("resumed run: %v\n%s", err, con.String())
		}
		applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root", "applied"))
		if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
			t.Errorf("applied %q, want %q", applied, want)
		}
		if !strings.Contains(con.String(), "already in the staging folder") {
			t.Errorf("the verified chunks of the first boot were not kept:\n%s", con.String())
		}
	})
	for _, mode := range []string{"pipeline", "stream"} {
		t.Run(mode, func(t *testing.T) {
			fd := newFakeDisk(t)
			env, _ := testEnv(t, fd, pub)
			err := Run(context.Background(), seqFor(t, url, "    mode: "+mode+"\n"), env)
			if !errors.Is(err, httpx.ErrNoRange) || !strings.Contains(err.Error(), "the server ignores Range requests") || !strings.Contains(err.Error(), `"fetch"`) {
				t.Fatalf("err = %v, want the fetch step refused with httpx.ErrNoRange", err)
			}
			if fd.calls["apply"] != 0 {
				t.Error("apply ran")
			}
		})
	}
}
