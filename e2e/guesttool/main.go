// Command guesttool is what the end-to-end tests run inside deployed guests
// (through the sample OS's test hook, see e2e/hook_test.go), where busybox
// cannot set xattrs or compare trees: it builds a tree with every kind of
// file metadata, records a tree's snapshot, and compares a tree with a
// recorded snapshot. Built static (CGO_ENABLED=0) by the tests.
//
//	guesttool populate DIR [SEED]     build a treetest tree (small) in DIR, owned by DIR's owner unless root
//	guesttool snapshot DIR SNAP       record DIR (gob)
//	guesttool diff SNAP DIR           print differences; exit 1 if any
//	guesttool digest DIR              one SHA-256 over DIR's snapshot
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/minint/minint/internal/treetest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "guesttool:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: guesttool populate|snapshot|diff|digest ARGS")
	}
	switch args[0] {
	case "populate":
		var seed uint64
		if len(args) > 2 {
			n, err := strconv.ParseUint(args[2], 10, 64)
			if err != nil {
				return err
			}
			seed = n
		}
		opts := treetest.Options{Seed: seed, Small: true}
		// A home's tree belongs to its user: a user-state restore takes
		// nothing else from a home (no device nodes, no setuid files, no
		// files of other owners).
		var st syscall.Stat_t
		if syscall.Stat(args[1], &st) == nil && st.Uid != 0 {
			opts.Owner = &treetest.Owner{UID: int(st.Uid), GID: int(st.Gid)}
		}
		_, err := treetest.Build(args[1], opts)
		return err
	case "snapshot":
		if len(args) != 3 {
			return fmt.Errorf("usage: guesttool snapshot DIR SNAP")
		}
		tr, err := treetest.Snapshot(args[1])
		if err != nil {
			return err
		}
		// gob, not JSON: names and xattr values may be any bytes.
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(tr); err != nil {
			return err
		}
		return os.WriteFile(args[2], b.Bytes(), 0o644)
	case "diff":
		if len(args) != 3 {
			return fmt.Errorf("usage: guesttool diff SNAP DIR")
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		var want treetest.Tree
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&want); err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		got, err := treetest.Snapshot(args[2])
		if err != nil {
			return err
		}
		// Restores set mtimes exactly; atimes are never compared.
		lines := treetest.Diff(want, got, treetest.DiffOptions{IgnoreRoot: true, IgnoreSymlinkMtime: true})
		for _, l := range lines {
			fmt.Println(l)
		}
		if len(lines) > 0 {
			os.Exit(1)
		}
		return nil
	case "digest":
		tr, err := treetest.Snapshot(args[1])
		if err != nil {
			return err
		}
		h := sha256.New()
		enc := gob.NewEncoder(h)
		for _, p := range tr.Paths() {
			e := tr.Entries[p]
			e.Atime = time.Time{}
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		fmt.Printf("%x\n", h.Sum(nil))
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
