package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEventsAndPlainLines(t *testing.T) {
	var human, events bytes.Buffer
	r := New(&human, &events)
	task := r.Start("apply", 100, "file")
	for i := 0; i < 100; i++ {
		task.Add(1)
	}
	task.Finish(nil)
	one := r.Start("clean", 1, "entry")
	one.Add(1)
	one.Finish(nil)
	fail := r.Start("fetch", 10, "bytes")
	fail.Finish(errors.New("boom"))

	var kinds []string
	sc := bufio.NewScanner(&events)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		kinds = append(kinds, e.Op+":"+e.State)
		if e.Op == "fetch" && e.State == "failed" && e.Error != "boom" {
			t.Errorf("failed event lacks error: %+v", e)
		}
	}
	got := strings.Join(kinds, " ")
	if !strings.HasPrefix(got, "apply:start") || !strings.Contains(got, "apply:done") || !strings.HasSuffix(got, "fetch:failed") {
		t.Errorf("events = %s", got)
	}
	h := human.String()
	for _, want := range []string{"apply: 25%", "apply: 100%", "apply: done, 100 files", "clean: done, 1 entry in", "fetch: FAILED"} {
		if !strings.Contains(h, want) {
			t.Errorf("human output lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "\x1b") {
		t.Errorf("escape codes written to a non-terminal:\n%q", h)
	}
}

// Nothing a reporter writes carries a URL's password or token, whatever
// the caller passed: events stay valid JSON.
func TestSecretsRedacted(t *testing.T) {
	var human, events bytes.Buffer
	r := New(&human, &events)
	u := `http://:s3cret@10.0.2.2:8080/pkg/manifest.json?page=1&token=t0ken`
	r.Printf("fetch %s", u)
	r.Emit(Event{Kind: "step", Msg: "fetch " + u, Error: `GET "` + u + `": 404`,
		Data: map[string]any{"url": u, "list": []string{u}}})
	task := r.Start("upload", 10, "bytes")
	task.Finish(errors.New("PUT " + u + ": 507"))
	for _, out := range []string{human.String(), events.String()} {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "t0ken") || !strings.Contains(out, "xxxxx") {
			t.Errorf("not redacted:\n%s", out)
		}
	}
	sc := bufio.NewScanner(&events)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
	}
}
