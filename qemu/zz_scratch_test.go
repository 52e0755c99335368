package qemu

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"
)

func TestScratchScreen(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	pr, pw, _ := os.Pipe()
	vm, err := Start(context.Background(), Options{Kernel: "/tmp/fieldpe-pe/vmlinuz", Initrd: "/tmp/fieldpe-pe/initramfs.cpio.gz",
		Append: "console=tty0 console=ttyS0,115200 quiet minint.done=poweroff minint.media=nope minint.failwait=30 minint.serial=" + os.Getenv("SCRATCH"),
		Screen: true, NoNet: true, NICs: []NIC{{Model: "e1000"}}, Disks: []Disk{{Size: 64 << 20, Interface: "megasas", Serial: "MEGA1"}},
		Timeout: 4 * time.Minute, LogPath: "/tmp/fieldpe-console.log", Stdin: pr})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	ctx := context.Background()
	if _, err := vm.WaitFor(ctx, regexp.MustCompile(`choose:|power off in`)); err != nil {
		if _, err2 := vm.WaitFrame(ctx, regexp.MustCompile(`power off in`)); err2 != nil {
			t.Fatal(err, err2)
		}
	}
	time.Sleep(2 * time.Second)
	if err := vm.Screenshot(ctx, "/tmp/fieldpe-fail.png"); err != nil {
		t.Error(err)
	}
	fr := vm.Frames()
	if len(fr) > 0 {
		t.Logf("last frame:\n%s", fr[len(fr)-1].Text())
	}
	pw.Write([]byte("p"))
	select {
	case <-vm.Exited():
		t.Log("exited after p")
	case <-time.After(20 * time.Second):
		t.Error("no exit after p")
	}
}
