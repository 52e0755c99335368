// Package pe is minint's task-sequence engine: it runs, inside the PE, the
// declarative YAML sequence that deploys a machine, and survives power cuts
// by journaling its progress on the target disk.
//
// # Sequences
//
// The sequence language (step types, conditions, sizes, load errors with
// FILE:LINE:COLUMN, the fail-safe order check) is package sequence; this
// package runs a loaded *sequence.Sequence. Env.DryRun prints the plan in
// the PE, running only the read-only requirements and select-disk steps;
// `minint sequence check FILE` prints it on the host from the parser alone.
//
// # Journal and resume
//
// Before the target has a file system nothing destructive has a record
// worth keeping, so the journal lives in memory. Right after formatting,
// the root partition is mounted and /minint (the staging folder) created;
// from then on the journal (package journal) is rewritten atomically and
// fsync'd before and after every step. A PE booted again runs the
// always-run steps (requirements, select-disk, mount), and when the disk
// selected already carries the sequence's partition layout with a journal
// of the same sequence (same SHA-256), it adopts it: finished steps are
// skipped, the interrupted one is redone, except that everything from the
// fetch on runs again (see distrust: the journal lies where whoever ran a
// system on that disk could write, so it says where to start, not what
// to trust) unless every step finished or a power step since then is
// recorded done (so sequence check refuses an apply-image or clean that
// would need, past a power step, what a fetch before it verified).
// Redoing is safe step by step:
// partition and format start over; fetch continues its .part file with a
// Range request (from zero when the server ignores Range, and once more
// from zero if the result does not verify); apply-image first empties the
// root except /minint; setup and
// bootfiles rewrite their files; run steps run again (make them idempotent);
// reboot/poweroff are recorded as done before they happen.
//
// A step's retries (sequence's flaky.go) are tries within one boot: each
// is recorded as started with the failure before it, so a power cut while
// waiting to try again redoes the step at the next boot. A step that
// failed with continue-on-error is recorded as continued, which a resumed
// run treats as finished: the steps after it already ran without it. The
// values of the sequence's variables (sequence.Bind, put in before the
// first step) are kept in the journal; a run with other values does not
// resume it.
//
// # Refresh in place
//
// `minint stage` on a running system captures its user state into
// /minint/state, copies the PE and the sequence into /minint/pe and onto the
// ESP, and arms a one-shot boot of the PE with minint.staged=UUID=<root
// file system> on its command line. The PE then loads the sequence from
// that file system and runs, typically: mount (existing: true: the staged
// root and the ESP beside it, no partitioning), capture-state (again, now
// that nothing runs), fetch, clean, apply-image, setup (restore-state),
// bootfiles, reboot. Until clean, nothing outside /minint is written, and
// a failure reboots into the old system (peinit, with minint.done=reboot;
// Run's error then does not wrap ErrChanged). capture-state signs the
// store with a key made for that capture, whose public half the setup
// step hands to restore-state (with the pull-state keys and the
// capture-state paths; see stateTrust). clean first checks that the
// package is staged and verified and the state captured and verifying
// with those keys, then makes the
// PE the persistent boot default (UEFI: loader.conf and LoaderEntryDefault;
// BIOS: syslinux.cfg's DEFAULT), so
// a power cut during clean or apply boots the PE again and it resumes;
// bootfiles gives the default to the new system and removes the PE's entry
// and files from the ESP. The journal is tied to its staging (a PE staged
// again starts over), and capture-state refuses to run once cleaning has
// begun, whatever the journal says. See refresh.go.
//
// # Packages and verification
//
// fetch takes a manifest (package manifest; http(s) URL or medium:/path)
// whose detached signature (manifest.json.sig, minisign's format; package
// sign) must verify against the key built into the PE (Env.PublicKey,
// /etc/minint/package.pub) before it is even parsed, be made for a package,
// not be expired, and match the step's package: and min-version: (see
// docs/security.md); the image file's size and SHA-256 must then match before
// apply-image may use it. An image on the boot medium with chunk hashes,
// fetched right before apply-image, gets no hashing pass of its own:
// apply-image reads it through manifest.ChunkReader, which hands out only
// chunks that matched, and checks the chunks it did not read before it is
// done, so that each byte is read and hashed once and nothing after the
// apply runs on an image that does not match. In stream mode the WIM is read over HTTP Range
// requests and every chunk is checked against the signed per-chunk hashes
// before use (package fetch, the transport). A failed verification stops the sequence, so the disk is
// never made bootable from an unverified package. Sequences fetched over
// the network need a signature too (see Deploy).
//
// # First boot
//
// The setup step copies minint-setup (cmd/minint-setup) to
// /minint/minint-setup and the answer file to /minint/setup.json (package
// answer); bootfiles then adds init=/minint/minint-setup to the deployed
// system's boot entry and records which loader files carry it. On its first
// boot the system runs setup instead of its init; setup removes init= only
// after everything succeeded, then execs the real init.
//
// # Capture
//
// capture-image (capture_step.go) is the other direction: it finds the
// installed system among the disks (package capture: ext2/3/4, xfs, btrfs
// mounted read-only without journal replay, os-release plus an init),
// captures it into a WIM whose XML records OS, kernels, capture time and
// the generalize report, and generalizes only what the image stores
// (package generalize, a wim capture filter), so the reference disk is
// never written unless in-place is set. The WIM is checked, then uploaded
// restartably to WebDAV (package upload: NAME.partial, read back, MOVE) or
// placed, optionally split into .swm parts, on another disk.
// sequence.Capture is the default sequence of `minint iso --capture URL`.
//
// # Secure Boot and the kernel's lockdown
//
// The PE boots with Secure Boot on through shim, Debian's signed GRUB and
// Debian's signed kernel (or a UKI signed with the organization's key; see
// package media). The inventory reports it (secure_boot, setup_mode, and
// lockdown from securityfs), and conditions can test `secure-boot == on`.
// Debian's kernel then locks itself down in "integrity" mode
// (kernel_lockdown(7)), which forbids, and what that means for the PE:
//
//   - loading modules without a valid signature: Debian's modules are
//     signed and load as usual; an out-of-tree module must be signed with
//     a key the kernel trusts (built in, or enrolled in MOK or db);
//   - kexec_load; kexec_file_load only with a kernel signed by a trusted
//     key (the PE uses neither: it reboots through the firmware);
//   - /dev/mem, /dev/kmem, /dev/port, ioperm/iopl, MSR writes, custom ACPI
//     tables and methods, PCI BAR access through sysfs, unsafe module
//     parameters (io=, irq=), changing a serial port's I/O base: the PE
//     reads the hardware through sysfs (DMI tables in
//     /sys/firmware/dmi, PCI ids) and needs none of these;
//   - hibernation, debugfs writes, BPF writes to user memory.
//
// What lockdown leaves alone, and the PE needs: writing whole disks and
// partitions (partition, format, apply, clean), mounting file systems,
// writing UEFI variables through efivarfs (boot entries, BootNext, the
// loader's one-shot entry), loading firmware files for drivers, the
// network, and running any program of the initramfs.
//
// # Events
//
// Every step emits JSON-lines events (internal/progress: kind "step" with
// state start/done/skipped/failed/plan, "progress" for fetch and apply,
// "sequence" for the whole run, "requirements" with the unmet list) to
// Env.Events and, when the sequence has status-url, as POSTs there, each
// naming the machine in the X-Minint-Machine header (progress.Machine:
// serial number or MAC, hostname, IP), which is how `minint serve` or any
// other collector keeps one row per machine across reboots. When the last
// step reboots or powers off, "sequence done" is reported and the queue
// of posts flushed first. A failed run saves its full log as
// /minint/failure-TIME.log (or in Env.LogDir before the disk has a file
// system) and uploads it to the status URL (text/plain, X-Minint-Log:
// failure), retrying transient failures for up to a minute.
//
// # Wiring
//
// cmd/peinit calls Deploy (real backend: SystemBackend over diskops,
// bootloader and wim; inventory from pe/hw), or Run with its own Env and
// Backend.
package pe
