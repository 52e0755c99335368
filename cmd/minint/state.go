package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/netstore"
	"github.com/spf13/cobra"
)

// The state group works with user-state stores directly: what `minint
// stage` and minint-setup do, one piece at a time, for the replace flow
// and for checking a store by hand.
func init() {
	register(func() *cobra.Command {
		return group(&cobra.Command{
			Use:   "state",
			Short: "Capture, verify, push, pull and restore user-state stores",
		},
			newStateCaptureCmd(),
			newStateVerifyCmd(),
			newStatePushCmd(),
			newStatePullCmd(),
			newStateRestoreCmd(),
		)
	})
}

func newStateCaptureCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "capture [flags] STORE",
		Args:  argCount(1, 1),
		Short: "Capture user state of ROOT into STORE (hard links on the same filesystem)",
	}
	fs := c.Flags()
	root := fs.String("root", "/", "root `DIR` of the system to capture")
	paths := fs.StringArray("state-path", nil, "extra absolute `PATH` to keep (repeatable)")
	exclude := fs.StringArray("exclude", nil, "`PATTERN` (path.Match on the absolute path) to leave out")
	noHomes := fs.Bool("no-homes", false, "leave out the regular users' homes and accounts")
	rootHome := fs.Bool("root-home", false, "also capture /root")
	cp := fs.Bool("copy", false, "copy files instead of hard-linking them")
	keyFile := fs.String("key", "", "state key `FILE.key` (minint keygen) to sign the store with (required)")
	outFlags := addOutputFlags(c, "events", "show no progress")
	c.RunE = func(_ *cobra.Command, args []string) error {
		key, err := readPrivate(*keyFile)
		if err != nil {
			return err
		}
		r, ctx, end, err := outFlags.start()
		if err != nil {
			return err
		}
		defer end()
		t := r.Start("capture-state", 0, "bytes")
		m, st, err := state.CaptureStat(ctx, *root, fs.Arg(0), state.Spec{NoHomes: *noHomes, RootHome: *rootHome, Paths: *paths, Exclude: *exclude, Copy: *cp, Key: key, Progress: t.Add})
		t.Finish(err)
		if err != nil {
			return err
		}
		r.Emit(progress.Event{Kind: "state", Op: "capture", State: "done", Data: map[string]any{"entries": len(m.Entries), "bytes": m.Bytes, "linked": st.Linked, "copied": st.Copied}})
		r.Printf("%s, %s (%s linked, %d copied, %s)", plural.Count(len(m.Entries), "entry"), plural.Count(m.Bytes, "byte"),
			plural.Count(st.Linked, "file"), st.Copied, plural.Count(st.Deduplicated, "duplicate"))
		return nil
	}
	return c
}

func newStateVerifyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify STORE",
		Args:  argCount(1, 1),
		Short: "Check a store's signature, index, manifest and every object",
	}
	fs := c.Flags()
	keys := keyFlag(c)
	c.RunE = func(_ *cobra.Command, args []string) error {
		pubs, err := readStatePubs(*keys)
		if err != nil {
			return err
		}
		m, keyID, err := state.ReadSigned(fs.Arg(0), pubs)
		if err != nil {
			return err
		}
		ctx, stop := signalContext()
		defer stop()
		if err := state.Verify(ctx, fs.Arg(0), m); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "%s: complete, signed by key %s: %s, %s, %s, %s, captured %s on %s\n",
			fs.Arg(0), keyID, plural.Count(len(m.Entries), "entry"), plural.Count(len(m.Objects()), "object"), plural.Count(m.Bytes, "byte"),
			plural.Count(len(m.Accounts.Passwd), "account"), m.Created, m.Host)
		return nil
	}
	return c
}

func newStatePushCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "push STORE URL|DIR",
		Args:  argCount(2, 2),
		Short: "Copy a store to an http(s) URL (WebDAV PUT) or a directory; index last",
	}
	fs := c.Flags()
	outFlags := addOutputFlags(c, "events", "show no progress")
	c.RunE = func(_ *cobra.Command, args []string) error {
		return transfer(outFlags, "push", func(ctx context.Context, o netstore.Options) error {
			return netstore.Push(ctx, fs.Arg(0), fs.Arg(1), o)
		})
	}
	return c
}

func newStatePullCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "pull URL|DIR STORE",
		Args:  argCount(2, 2),
		Short: "Copy a store from an http(s) URL or a directory, checking its signature and every object",
	}
	fs := c.Flags()
	keys := keyFlag(c)
	outFlags := addOutputFlags(c, "events", "show no progress")
	c.RunE = func(_ *cobra.Command, args []string) error {
		pubs, err := readStatePubs(*keys)
		if err != nil {
			return err
		}
		return transfer(outFlags, "pull", func(ctx context.Context, o netstore.Options) error {
			o.Keys = pubs
			_, err := netstore.Pull(ctx, fs.Arg(0), fs.Arg(1), o)
			return err
		})
	}
	return c
}

func transfer(outFlags *outputFlags, op string, f func(context.Context, netstore.Options) error) error {
	r, ctx, end, err := outFlags.start()
	if err != nil {
		return err
	}
	defer end()
	t := r.Start(op+"-state", 0, "bytes")
	err = f(ctx, netstore.Options{Progress: t.Add, Client: &httpx.Client{Log: r.Printf}})
	t.Finish(err)
	return err
}

func newStateRestoreCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "restore [flags] STORE",
		Args:  argCount(1, 1),
		Short: "Restore a store into ROOT: accounts first, then files; refuses an unsigned or incomplete store",
	}
	fs := c.Flags()
	keys := keyFlag(c)
	root := fs.String("root", "", "root `DIR` to restore into (required: never defaults to /)")
	cp := fs.Bool("copy", false, "copy files out of the store instead of hard-linking them")
	noAccounts := fs.Bool("no-accounts", false, "do not merge the captured accounts")
	paths := fs.StringArray("path", nil, "absolute `PATH` beyond the users' homes to restore from the store (repeatable; what was captured with --state-path)")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *root == "" {
			return usageErrorf("--root DIR is required (it never defaults to /)")
		}
		pubs, err := readStatePubs(*keys)
		if err != nil {
			return err
		}
		ctx, stop := signalContext()
		defer stop()
		rep, err := state.Restore(ctx, fs.Arg(0), *root, state.RestoreOptions{Keys: pubs, Copy: *cp, NoAccounts: *noAccounts, Paths: *paths})
		if err != nil {
			return err
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(c.ErrOrStderr(), "warning: %s\n", w)
		}
		b, _ := json.Marshal(rep)
		fmt.Fprintln(c.OutOrStdout(), string(b))
		return nil
	}
	return c
}

// keyFlag adds the repeatable --key of the commands that read a store.
func keyFlag(c *cobra.Command) *[]string {
	return c.Flags().StringArray("key", nil, "state public key `FILE.pub` (minint keygen) the store must be signed with (repeatable; at least one)")
}

// readStatePubs reads the public state keys a store is checked with.
func readStatePubs(files []string) ([]ed25519.PublicKey, error) {
	if len(files) == 0 {
		return nil, usageErrorf("--key FILE.pub is required: a store is only believed when signed by a state key you trust")
	}
	var pubs []ed25519.PublicKey
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		k, err := sign.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w (give the .pub file from minint keygen)", f, err)
		}
		pubs = append(pubs, k)
	}
	return pubs, nil
}
