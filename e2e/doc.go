// Package e2e holds minint's end-to-end deployment tests: a sample OS is
// captured with `minint wim capture`, packaged and signed with `minint
// package create`, put on a boot ISO with `minint iso`, and deployed by the
// PE to a blank disk of a QEMU VM; the deployed OS then boots, runs
// first-boot setup and reports itself on the serial console.
//
// They need root, QEMU, nginx, syslinux, mtools and a kernel in /boot (see
// scripts/setup-host.sh) and run only with MININT_E2E=1 (make test sets it).
// One PE and one package are built per test binary and the sample root is
// cached in $MININT_CACHE/e2e. Every test is parallel: a guest is one TCG
// thread, so go test's default -parallel (GOMAXPROCS) keeps one guest per
// core, which halves the suite's time on the 2-core CI machine; each test
// has its own disks, servers (ports chosen by the kernel) and namespaces.
//
// Cases: TestDeployFromISO (image on the ISO, SeaBIOS, MBR),
// TestDeployOverHTTP (signed sequence and package from nginx, OVMF, GPT),
// TestFailClosed (bad signature, wrong SHA-256, 404: no boot file is
// written), TestUnsignedNetworkSequence, TestRequirementsNotMet (128 MiB
// disk: nothing written), TestPowerCutResume (QEMU killed during a slow
// download, during apply and after apply before the boot files; the
// next boot resumes from the journal), TestCaptureRedeploy (deploy, change
// the system, the capture PE uploads a generalized WIM to WebDAV, redeploy
// to a blank VM with a new identity, the reference unchanged),
// TestCaptureAmbiguous (xfs and btrfs systems: the PE loads their modules
// and refuses to choose, listing both), TestReplace and
// TestReplaceIncompleteStore (user state through an nginx WebDAV store to
// another machine), and the refresh tests in refresh_test.go.
// Tests act inside deployed guests through the sample OS's test hook
// (hook_test.go) and e2e/guesttool. MININT_E2E_CONSOLE=1 copies the
// guests' consoles to stderr.
package e2e
