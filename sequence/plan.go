package sequence

import "fmt"

// Decision is what a run will do with a step, as far as the facts known
// before it starts can tell.
type Decision int

const (
	// Run: the step has no condition, or its condition holds.
	Run Decision = iota
	// Skip: the step's when: condition is false.
	Skip
	// AtRunTime: the condition needs a fact that is known only when the
	// sequence runs on the machine (e.g. disk-size after select-disk).
	AtRunTime
)

// PlannedStep is one line of a plan.
type PlannedStep struct {
	Step     Step
	Decision Decision
	// Err is why the condition could not be decided (AtRunTime): in a
	// run, not a plan, that is the step's error.
	Err error
}

// String is the step's plan line: "name: description", with why it is
// skipped or left open.
func (p PlannedStep) String() string {
	b := p.Step.Base()
	switch p.Decision {
	case Skip:
		return fmt.Sprintf("%s: skipped (%s is false)", b.Name, b.When.Src)
	}
	d := p.Step.Describe()
	if f := b.flakyString(); f != "" {
		d += " (" + f + ")"
	}
	if p.Decision == AtRunTime {
		return fmt.Sprintf("%s: %s (when %s: decided at run time)", b.Name, d, b.When.Src)
	}
	return fmt.Sprintf("%s: %s", b.Name, d)
}

// Decide evaluates the step's condition with the facts known so far: a
// condition on a fact that is not known is decided at run time, never
// silently false.
func Decide(st Step, f Facts) PlannedStep {
	ok, err := st.Base().When.Eval(f)
	switch {
	case err != nil:
		return PlannedStep{Step: st, Decision: AtRunTime, Err: err}
	case !ok:
		return PlannedStep{Step: st, Decision: Skip}
	}
	return PlannedStep{Step: st, Decision: Run}
}

// Plan decides every step with the facts f, as a host checking a
// sequence for another machine can: what the machine finds out while
// running stays open.
func (s *Sequence) Plan(f Facts) []PlannedStep {
	var out []PlannedStep
	for _, st := range s.Steps {
		out = append(out, Decide(st, f))
	}
	return out
}
