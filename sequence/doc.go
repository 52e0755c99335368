// Package sequence is minint's task-sequence language: the model of a
// declarative YAML sequence, its parser and validator, and the plan a
// host can show for it. Package pe runs what this package loads; keeping
// them apart lets `minint sequence check`, `minint stage` and
// `minint package sign` check a sequence without linking the engine.
//
// A sequence (see Sequence and the step types in steps.go) is loaded with
// Parse or LoadFile. Unknown keys, values of the wrong type, bad sizes and
// durations, unknown step types and fact names, missing parameters and
// steps in an impossible order are all load errors (*LoadError, wrapping
// ErrSequence) naming FILE:LINE:COLUMN, so that `minint sequence check`
// catches them on the host rather than the PE halfway through a
// deployment.
//
// Sizes (min-memory, min-disk, a disk rule's min-size and max-size,
// partition sizes, split-size, sizes in conditions) follow one rule,
// package bytesize's: 8G and 8GiB are 8×2³⁰ bytes, 8GB is 8×10⁹ bytes;
// errors and plans show how a size was understood (512MiB, 536870912
// bytes).
//
// Step types: requirements, select-disk, partition, format, mount, fetch,
// apply-image, setup, bootfiles, run, reboot, poweroff, capture-image,
// capture-state, pull-state, clean. Every step may have a name (default:
// its type; names are unique, the journal keys on them) and a when:
// condition over facts (firmware, secure-boot, arch, memory, cpus, disk, disk-size,
// boot, var.NAME from minint.var.NAME= on the kernel command line); see
// Condition. Plan and Decide evaluate conditions with the facts known so
// far; what only the machine can tell is decided at run time.
//
// Every step may also have timeout:, retries: (with retry-delay:, a
// doubling backoff) and continue-on-error:, within limits that keep the
// fail-safe order: retries only where a retry is safe (RetryTypes),
// continue-on-error only on steps nothing later relies on
// (ContinueTypes); see flaky.go.
//
// Variables (vars:, rules: matching machines by MAC, serial, model,
// vendor or UUID, and ${var.NAME} / ${machine.KEY} in step values) let
// one sequence name each host; see vars.go and Sequence.Bind, which the
// PE calls before the first step.
package sequence
