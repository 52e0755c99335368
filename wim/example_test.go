package wim_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/minint/minint/wim"
)

func ExampleOpenReader() {
	r, err := wim.OpenReader("install.wim")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for _, img := range r.Images() {
		fmt.Println(img.Index, img.Name, img.FileCount)
	}
	// Apply image 1 to a mounted target, checking every blob's SHA-1.
	if err := r.Apply(context.Background(), 1, "/mnt/target", wim.ApplyOptions{}); err != nil {
		log.Fatal(err)
	}
}

func ExampleCreate() {
	cfg, err := wim.ParseCaptureConfig(strings.NewReader("[ExclusionList]\n/proc\n/sys\n/minint\n"))
	if err != nil {
		log.Fatal(err)
	}
	w, err := wim.Create("root.wim", wim.WriterOptions{Compression: wim.CompressionLZX, Integrity: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.AddImage(context.Background(), "/mnt/root", wim.ImageOptions{Name: "rootfs", Config: cfg}); err != nil {
		w.Close()
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
}
