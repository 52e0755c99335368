package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

// TestBootTimes: the "boot" event carries each phase's seconds, the
// kernel's clock at init and at the sequence, and the phases add up.
func TestBootTimes(t *testing.T) {
	var human, events bytes.Buffer
	e := &env{r: progress.New(&human, &events)}
	b := newBootTimes()
	time.Sleep(20 * time.Millisecond)
	b.mark("modules")
	b.mark("network")
	b.emit(e)
	var ev struct {
		Event string             `json:"event"`
		Data  map[string]float64 `json:"data"`
	}
	if err := json.Unmarshal(events.Bytes(), &ev); err != nil {
		t.Fatalf("%v: %s", err, events.String())
	}
	d := ev.Data
	if ev.Event != "boot" || d["modules"] < 0.02 || d["network"] < 0 || d["kernel_to_init"] <= 0 {
		t.Fatalf("event %s", events.String())
	}
	if sum := d["kernel_to_init"] + d["modules"] + d["network"]; sum-d["kernel_to_sequence"] > 1e-6 || d["kernel_to_sequence"]-sum > 1e-6 {
		t.Errorf("phases add up to %f, kernel_to_sequence %f", sum, d["kernel_to_sequence"])
	}
	if !bytes.Contains(human.Bytes(), []byte("PE ready")) {
		t.Errorf("console: %s", human.String())
	}
}
