// Command ociarchive writes a single-layer container image, built from files on this machine, as an
// image archive that `ctr -n k8s.io images import` (containerd), `podman load` and `docker load` accept:
// an OCI image layout (oci-layout, index.json, blobs/sha256/…) plus the docker-save manifest.json that
// containerd's own `ctr export` adds for compatibility. No engine, no registry: go-containerregistry
// assembles the image; this program only lays out the layer deterministically (sorted entries, owner
// 0:0, one fixed timestamp) so the same inputs give byte-identical archives.
//
//	ociarchive -ref localhost/sextant/pause:3.10.1 -created 2026-02-10T12:53:36Z \
//	  -entrypoint /pause -add /pause=/path/to/pause -out pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// entry is one file or directory of the layer.
type entry struct {
	mode os.FileMode
	data []byte // nil for a directory
}

func main() {
	var adds, dirs, env, entrypoint multi
	out := flag.String("out", "", "archive to write")
	ref := flag.String("ref", "", "image name with tag, e.g. localhost/sextant/pause:3.10.1")
	created := flag.String("created", "1970-01-01T00:00:00Z", "RFC 3339 time for the config and every layer entry")
	user := flag.String("user", "", "config User (empty: root)")
	flag.Var(&adds, "add", "IMAGE_PATH=HOST_PATH: a file (symlinks followed; mode kept); repeatable")
	flag.Var(&dirs, "dir", "IMAGE_PATH=OCTAL_MODE: an empty directory, e.g. /tmp=1777; repeatable")
	flag.Var(&env, "env", "KEY=VALUE for the config; repeatable")
	flag.Var(&entrypoint, "entrypoint", "one entrypoint argument; repeatable, in order")
	flag.Parse()
	if err := run(*out, *ref, *created, *user, adds, dirs, env, entrypoint); err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		os.Exit(1)
	}
}

func run(out, ref, created, user string, adds, dirs, env, entrypoint []string) error {
	if out == "" || ref == "" {
		return fmt.Errorf("-out and -ref are required")
	}
	// Weak validation: go-containerregistry does not read "localhost/…" as a registry the way
	// containerd's reference parser does; the name is kept as given, the tag must be explicit.
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil || !strings.HasSuffix(ref, ":"+tag.TagStr()) {
		return fmt.Errorf("-ref %q: want a name with an explicit tag (%v)", ref, err)
	}
	when, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return fmt.Errorf("-created %q: %w", created, err)
	}
	files := map[string]entry{}
	for _, a := range adds {
		dst, src, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(dst) {
			return fmt.Errorf("-add %q: want /image/path=host-path", a)
		}
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("-add %q: %w", a, err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("-add %q: %w", a, err)
		}
		files[path.Clean(dst)] = entry{mode: st.Mode().Perm(), data: data}
	}
	for _, d := range dirs {
		dst, m, ok := strings.Cut(d, "=")
		mode, perr := strconv.ParseUint(m, 8, 32)
		if !ok || perr != nil || !path.IsAbs(dst) {
			return fmt.Errorf("-dir %q: want /image/path=octal-mode", d)
		}
		files[path.Clean(dst)] = entry{mode: os.FileMode(mode&0o777) | modeBits(mode)}
	}
	layerTar, err := layerBytes(files, when)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: when}, CreatedBy: "sextant scripts/build-kubernetes-images.sh", Comment: ref},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: when}
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.Env = env
	cfg.Config.User = user
	cfg.Config.WorkingDir = "/"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}

	dir, err := os.MkdirTemp(filepath.Dir(out), ".ociarchive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// The names containerd gives an imported OCI image: io.containerd.image.name is the full reference,
	// org.opencontainers.image.ref.name the tag (what `ctr export` writes).
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": tag.TagStr(),
	})); err != nil {
		return err
	}
	if err := writeDockerManifest(dir, img, ref); err != nil {
		return err
	}
	return tarDir(dir, out, when)
}

// modeBits carries the sticky/setgid/setuid bits of an octal mode into os.FileMode.
func modeBits(m uint64) os.FileMode {
	var fm os.FileMode = os.ModeDir
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// layerBytes lays out the files and their parent directories as one tar, sorted, owned by root.
func layerBytes(files map[string]entry, when time.Time) ([]byte, error) {
	all := map[string]entry{}
	for p, e := range files {
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{mode: os.ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		e := all[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), ModTime: when, Uid: 0, Gid: 0, Format: tar.FormatPAX}
		if e.data == nil {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			h.Mode = int64(e.mode.Perm())
			if e.mode&os.ModeSticky != 0 {
				h.Mode |= 0o1000
			}
		} else {
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(e.data)), int64(e.mode.Perm())
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeDockerManifest adds the docker-save manifest.json beside the OCI layout.
func writeDockerManifest(dir string, img v1.Image, ref string) error {
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var paths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		paths = append(paths, "blobs/sha256/"+d.Hex)
	}
	m := tarball.Manifest{{Config: "blobs/sha256/" + cfgName.Hex, RepoTags: []string{ref}, Layers: paths}}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
}

// tarDir writes dir as a tar at out (atomically), sorted, with one timestamp and owner 0:0.
func tarDir(dir, out string, when time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, p := range names {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: when, Mode: 0o644, Format: tar.FormatPAX}
		if st.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, st.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
