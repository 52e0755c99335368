// Package journal records how far a task sequence got, durably, so that a
// PE booted again after a power cut or reboot resumes where it stopped.
//
// The journal is one JSON file in the staging folder of the target disk
// (/minint/journal.json). Every update replaces it atomically through
// internal/durable: write a temporary file, fsync it, rename it over the old
// one, fsync the directory.
// After a crash the file is therefore either the old or the new version,
// never a mix.
package journal

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
)

// FileName is the journal's name inside the staging folder.
const FileName = "journal.json"

// Step states.
const (
	Started = "started" // began, not known to have finished: redo it
	Done    = "done"
	Skipped = "skipped" // its condition was false
	Failed  = "failed"
	// Continued: failed, and the run went on (continue-on-error). It is
	// finished like Done: a resumed run does not redo it, since the steps
	// after it already ran without it.
	Continued = "continued"
)

// Journal is the record of one sequence run on one target.
type Journal struct {
	// Sequence is the SHA-256 of the sequence file; a journal is only
	// resumed by the very same sequence.
	Sequence string    `json:"sequence"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Boots    int       `json:"boots"` // how many times a PE has run it
	// Origin identifies the staging of an in-place refresh (the staged
	// sequence file's identity): a journal from an earlier staging is
	// not resumed.
	Origin string   `json:"origin,omitempty"`
	Steps  []Record `json:"steps"`
	// State is what later steps need from earlier ones (the engine's
	// business: partitions, fetched files…).
	State json.RawMessage `json:"state,omitempty"`
}

// Record is one step's entry.
type Record struct {
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Status   string    `json:"status"`
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// Ended reports whether the step ran to its end in some boot (done, or
// failed and continued): a resumed run does not redo it for that reason.
func (r *Record) Ended() bool {
	return r != nil && (r.Status == Done || r.Status == Continued)
}

// Step returns the record of a step, or nil.
func (j *Journal) Step(name string) *Record {
	for i := range j.Steps {
		if j.Steps[i].Name == name {
			return &j.Steps[i]
		}
	}
	return nil
}

// Set updates (or adds) a step's record.
func (j *Journal) Set(r Record) {
	if p := j.Step(r.Name); p != nil {
		*p = r
		return
	}
	j.Steps = append(j.Steps, r)
}

// MaxSize bounds what Load reads: a journal is a few KiB, and whoever ran
// a system on the target disk could have put a file there in its place.
const MaxSize = 1 << 20

// Load reads a journal; os.ErrNotExist if there is none.
func Load(path string) (*Journal, error) {
	b, err := bounded.ReadFile(path, MaxSize)
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("journal %s is damaged: %w", path, err)
	}
	return &j, nil
}

// Save writes j to path atomically and durably.
func Save(path string, j *Journal) error {
	j.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(b, '\n'), 0o644)
}
