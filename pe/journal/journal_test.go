package journal

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/bounded"
)

func TestSaveLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	j := &Journal{Sequence: "abc", Name: "s"}
	j.Set(Record{Name: "one", Type: "run", Status: Started})
	j.Set(Record{Name: "one", Type: "run", Status: Done, Attempts: 1})
	j.Set(Record{Name: "two", Type: "run", Status: Started})
	if err := Save(p, j); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Steps) != 2 || got.Step("one").Status != Done || got.Step("two").Status != Started || got.Sequence != "abc" {
		t.Errorf("loaded %+v", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	os.WriteFile(p, []byte(`{"sequence": "abc", "ste`), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged journal: %v", err)
	}
	// A file far larger than any journal is not read whole.
	if err := os.Truncate(p, MaxSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.Is(err, bounded.ErrTooLarge) {
		t.Errorf("oversized journal: %v", err)
	}
}

// TestCrashDuringSave kills a process that rewrites the journal in a tight
// loop: whatever instant it dies, the file on disk is a complete version.
func TestCrashDuringSave(t *testing.T) {
	if os.Getenv("JOURNAL_CHILD") != "" {
		p := os.Getenv("JOURNAL_CHILD")
		j := &Journal{Sequence: "x"}
		for i := 0; ; i++ {
			j.Set(Record{Name: strings.Repeat("s", i%50+1), Status: Done})
			if err := Save(p, j); err != nil {
				panic(err)
			}
		}
	}
	p := filepath.Join(t.TempDir(), FileName)
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=TestCrashDuringSave")
		cmd.Env = append(os.Environ(), "JOURNAL_CHILD="+p)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it has written at least once, then kill it mid-loop.
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
		}
		time.Sleep(time.Duration(round*13) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		j, err := Load(p)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if j.Sequence != "x" || len(j.Steps) == 0 {
			t.Fatalf("round %d: incomplete journal %+v", round, j)
		}
	}
}
