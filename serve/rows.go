package serve

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/minint/minint/internal/progress"
)

// Row is what the dashboard shows of one machine: the state its events
// add up to. Keys are kebab-case, as in every JSON minint prints.
type Row struct {
	ID       string `json:"id"`
	Serial   string `json:"serial,omitempty"`
	MAC      string `json:"mac,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	IP       string `json:"ip,omitempty"`
	Model    string `json:"model,omitempty"`
	// Sequence is the task sequence's name; Step the current step, the
	// StepIndex-th of StepCount.
	Sequence  string `json:"sequence,omitempty"`
	Step      string `json:"step,omitempty"`
	StepIndex int    `json:"step-index,omitempty"`
	StepCount int    `json:"step-count,omitempty"`
	// Op is the operation in progress (fetch, apply, …), Done of Total
	// Unit; Rate is Units per second and ETA seconds left (0: unknown).
	Op    string  `json:"op,omitempty"`
	Done  int64   `json:"done,omitempty"`
	Total int64   `json:"total,omitempty"`
	Unit  string  `json:"unit,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	ETA   float64 `json:"eta,omitempty"`
	// State is running, done or failed ("" before a sequence started).
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
	// Note qualifies a done State: EarlierBoot when the machine did
	// nothing because its journal says the sequence finished before.
	Note string `json:"note,omitempty"`
	// Log is the URL path of the last failure log.
	Log string `json:"log,omitempty"`
	// Runs counts sequence starts (a retry or a boot after power loss
	// starts again); Events every event received.
	Runs      int       `json:"runs,omitempty"`
	Events    int64     `json:"events"`
	FirstSeen time.Time `json:"first-seen"`
	LastSeen  time.Time `json:"last-seen"`

	rateAt   time.Time // the progress sample the rate was last measured from
	rateDone int64
}

// EarlierBoot is the Note of a machine whose PE found the sequence
// finished by the journal on its disk and did nothing: a network boot
// that came back after its deployment, or a journal planted by whoever
// ran a system on that disk (pe's distrust; minint.redo=1 redoes it).
const EarlierBoot = "finished in an earlier boot: nothing done now"

// stateOrder puts failed machines first, then running ones, then the rest.
var stateOrder = map[string]int{"failed": 0, "running": 1, "": 2, "done": 3}

// sortRows orders rows as the dashboard shows them: failed first, then
// running, idle and done; by ID within each.
func sortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(stateOrder[a.State], stateOrder[b.State]), cmp.Compare(a.ID, b.ID))
	})
}

// apply adds one journal record to the row.
func (r *Row) apply(rec record) {
	m := rec.Machine
	r.ID = m.ID
	for _, f := range []struct {
		dst *string
		v   string
	}{{&r.Serial, m.Serial}, {&r.MAC, m.MAC}, {&r.Hostname, m.Hostname}, {&r.IP, m.IP}, {&r.Model, m.Model}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if r.IP == "" {
		r.IP = rec.Remote
	}
	if r.FirstSeen.IsZero() {
		r.FirstSeen = rec.At
	}
	r.LastSeen = rec.At
	if rec.Log != "" {
		r.Log = "/status/logs/" + rec.Log
		return
	}
	var e progress.Event
	if json.Unmarshal(rec.Event, &e) != nil {
		return
	}
	r.Events++
	at := e.Time
	if at.IsZero() {
		at = rec.At
	}
	switch e.Kind {
	case "sequence":
		switch e.State {
		case "start":
			*r = Row{ID: r.ID, Serial: r.Serial, MAC: r.MAC, Hostname: r.Hostname, IP: r.IP, Model: r.Model,
				Log: r.Log, Runs: r.Runs + 1, Events: r.Events, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
				Sequence: e.Msg, State: "running"}
			if n, ok := e.Data["steps"].(float64); ok {
				r.StepCount = int(n)
			}
		case "resume":
			r.State, r.Error = "running", ""
		case "done":
			r.State, r.Error, r.Step, r.StepIndex = "done", "", "", r.StepCount
			if earlier, _ := e.Data["earlier_boot"].(bool); earlier {
				r.Note = EarlierBoot
			}
			r.clearProgress()
		case "failed":
			r.State, r.Error = "failed", e.Error
		}
	case "step":
		r.Step = e.Op
		if n, ok := e.Data["index"].(float64); ok {
			r.StepIndex = int(n)
		}
		if n, ok := e.Data["count"].(float64); ok {
			r.StepCount = int(n)
		}
		if e.State == "start" {
			r.clearProgress()
			if r.State != "running" {
				r.State, r.Error = "running", ""
			}
		}
		if e.State == "failed" {
			r.State, r.Error = "failed", e.Error
		}
	case "progress":
		r.progress(e, at)
	case "pe":
		switch e.State {
		case "done":
			if r.State != "failed" {
				r.State = "done"
			}
		case "failed":
			r.State, r.Error = "failed", e.Error
		}
	case "inventory":
		if r.Serial == "" {
			r.Serial, _ = e.Data["serial"].(string)
		}
		if r.Model == "" {
			r.Model, _ = e.Data["model"].(string)
		}
	}
}

func (r *Row) clearProgress() {
	r.Op, r.Done, r.Total, r.Unit, r.Rate, r.ETA = "", 0, 0, "", 0, 0
	r.rateAt, r.rateDone = time.Time{}, 0
}

// progress takes a progress event. The rate is measured between samples
// at least a second apart on the machine's own clock (its events carry
// their time), smoothed so that one slow second does not swing the ETA.
func (r *Row) progress(e progress.Event, at time.Time) {
	if e.Op != r.Op || e.State == "start" {
		r.clearProgress()
		r.Op, r.rateAt = e.Op, at
	}
	// Counts below zero are nonsense (and would overflow Total-Done).
	r.Done, r.Total, r.Unit = max(e.Done, 0), max(e.Total, 0), e.Unit
	if e.State == "done" || e.State == "failed" {
		if e.State == "done" && r.Total > 0 {
			r.Done = r.Total
		}
		r.ETA = 0
		return
	}
	if dt := at.Sub(r.rateAt).Seconds(); dt >= 1 && r.Done >= r.rateDone {
		rate := float64(r.Done-r.rateDone) / dt
		if r.Rate == 0 {
			r.Rate = rate
		} else {
			r.Rate = 0.7*r.Rate + 0.3*rate
		}
		r.rateAt, r.rateDone = at, r.Done
	}
	r.ETA = 0
	if r.Rate > 0 && r.Total > r.Done {
		r.ETA = float64(r.Total-r.Done) / r.Rate
	}
}
