package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/internal/strictyaml"
	"github.com/minint/minint/sequence"
)

// TestKeysAreKebabCase: every key of the documents people write (task
// sequences, layouts, disk rules, answer files) and of the JSON the CLI
// prints (--json) is kebab-case, in YAML and JSON alike. The PE's event
// stream, the signed package manifest and the journal are not documents
// of that kind and keep their own names.
func TestKeysAreKebabCase(t *testing.T) {
	types := []any{
		// Sequences: every step type, with what they embed.
		sequence.Requirements{}, sequence.SelectDisk{}, sequence.Partition{}, sequence.Format{}, sequence.Mount{},
		sequence.Fetch{}, sequence.ApplyImage{}, sequence.BootFiles{}, sequence.Setup{}, sequence.Command{},
		sequence.Power{}, sequence.CaptureImage{}, sequence.CaptureState{}, sequence.PullState{}, sequence.Clean{},
		sequence.NetworkInterface{},
		// Layouts and rules (also `disk partition --layout`, `disk select`).
		diskops.Layout{}, diskops.Rule{},
		// Answer files, as the PE writes them for minint-setup.
		answer.Config{}, answer.Result{}, generalize.Options{},
		// What the CLI prints with --json.
		diskops.Disk{}, diskops.Planned{}, diskops.CleanResult{}, bootloader.BootResult{}, wimInfo{},
	}
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, where string)
	walk = func(typ reflect.Type, where string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || !strings.HasPrefix(typ.PkgPath(), "github.com/minint/minint") {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			for _, tag := range []string{"yaml", "json"} {
				name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
				if name != "" && name != "-" && name != strictyaml.Kebab(name) {
					t.Errorf("%s.%s: %s key %q is not kebab-case", where, f.Name, tag, name)
				}
			}
			walk(f.Type, typ.Name())
		}
	}
	for _, v := range types {
		walk(reflect.TypeOf(v), reflect.TypeOf(v).String())
	}
}
