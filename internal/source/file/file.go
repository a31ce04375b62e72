// Package file is a configuration source reading Istio objects from a
// directory tree of multi-document YAML files and watching it for changes.
//
// Files named *.yaml or *.yml are read recursively; hidden files and
// directories (names starting with ".") and editor temporary files are
// ignored, while symbolic links to files are followed (a Kubernetes
// ConfigMap volume works; links to directories are not followed). Changes
// are noticed with fsnotify, debounced, and only files whose content
// changed are decoded again. Removing the directory itself removes every
// object; the source does not notice the directory being created again.
//
// A broken file does not take the rest down: when an object that was once
// valid becomes invalid, its last good version is still served and the
// problem is reported in the state's Diagnostics. When a file has an error
// that cannot be attributed to one object (a YAML syntax error, say), every
// object it served before is kept until the file is fixed.
package file

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source"
	"github.com/weftmesh/weft/internal/validate"
)

// Defaults for Options.
const (
	DefaultName     = "file"
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = time.Second
)

// Options configures a file source.
type Options struct {
	// Dir is the directory to read; it must exist when Run starts.
	Dir string
	// Name is the source name that qualifies object keys; DefaultName if empty.
	Name string
	// Debounce is how long the source waits after a change for more changes
	// before reading; DefaultDebounce if zero.
	Debounce time.Duration
	// MaxDelay caps the wait under a constant stream of changes: a read
	// happens at most MaxDelay after the first unread change; DefaultMaxDelay
	// if zero.
	MaxDelay time.Duration
	// Validate checks one decoded object; objects with error diagnostics
	// are treated as broken. Nil means validate.Object, Istio's rules.
	Validate func(*model.Config) model.Diagnostics
	// Logger receives operational messages; slog.Default() if nil.
	Logger *slog.Logger
}

// Source is a file source. Create it with New.
type Source struct {
	opts    Options
	decodes atomic.Int64
	started atomic.Bool
	// files and rootErr are owned by the goroutine running Run.
	files map[string]*fileState
	// rootErr is set while the root directory cannot be read.
	rootErr error
}

// fileState is what the source knows about one file.
type fileState struct {
	info fs.FileInfo // from the last read; nil if the read failed
	hash [sha256.Size]byte
	// served are the objects the file contributes: its valid objects and
	// the last good versions of its broken ones, in document order.
	served []*model.Config
	diags  model.Diagnostics
}

var _ source.Source = (*Source)(nil)

// New returns a file source for opts. It checks the options but does not
// touch the file system; Run does.
func New(opts Options) (*Source, error) {
	if opts.Dir == "" {
		return nil, errors.New("file source: Dir is required")
	}
	opts.Dir = filepath.Clean(opts.Dir)
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.MaxDelay < opts.Debounce {
		opts.MaxDelay = opts.Debounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Validate == nil {
		opts.Validate = validate.Object
	}
	return &Source{opts: opts}, nil
}

// Name returns the source name.
func (s *Source) Name() string { return s.opts.Name }

// Decodes returns how many times a file has been decoded since the source
// was created. Tests use it to check that unchanged files are not decoded
// again and that bursts of changes coalesce.
func (s *Source) Decodes() int64 { return s.decodes.Load() }

// Run reads the directory, calls sink with the initial state (Synced set),
// then watches the directory and calls sink after every change until ctx
// is done. It returns an error if the directory cannot be read or watched
// at the start. Run may be called once.
func (s *Source) Run(ctx context.Context, sink func(*model.SourceState)) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("file source: Run called twice")
	}
	s.files = map[string]*fileState{}
	fi, err := os.Stat(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("file source %s: %w", s.opts.Name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("file source %s: %s is not a directory", s.opts.Name, s.opts.Dir)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file source %s: %w", s.opts.Name, err)
	}
	defer w.Close()
	sc := &scanner{src: s, w: w, watched: map[string]bool{}}
	if err := sc.addWatch(s.opts.Dir); err != nil {
		return fmt.Errorf("file source %s: watching %s: %w", s.opts.Name, s.opts.Dir, err)
	}
	sc.scan(nil)
	sink(s.state())

	var (
		timer   *time.Timer
		timerC  <-chan time.Time
		first   time.Time
		touched = map[string]bool{}
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	schedule := func() {
		now := time.Now()
		if timerC == nil {
			first = now
		}
		wait := min(s.opts.Debounce, s.opts.MaxDelay-now.Sub(first))
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		timerC = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file source: watcher closed")
			}
			touched[filepath.Clean(ev.Name)] = true
			schedule()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file source: watcher closed")
			}
			// An overflow loses events; the full rescan below recovers.
			s.opts.Logger.Warn("file source: watch error", "source", s.opts.Name, "err", err)
			schedule()
		case <-timerC:
			timerC = nil
			if sc.scan(touched) {
				sink(s.state())
			}
			clear(touched)
		}
	}
}

// scanner walks the directory and keeps the watches in step with it. It
// is used only by the goroutine running Run.
type scanner struct {
	src     *Source
	w       *fsnotify.Watcher
	watched map[string]bool
}

func (sc *scanner) addWatch(dir string) error {
	// Adding a watched directory again is harmless and repairs a watch
	// lost when the directory was removed and created again.
	if err := sc.w.Add(dir); err != nil {
		return err
	}
	sc.watched[dir] = true
	return nil
}

// scan walks the tree, decodes the files whose content changed (or that
// were named by an event and may have changed within the same mtime), and
// drops files that are gone. It reports whether the state changed.
func (sc *scanner) scan(touched map[string]bool) bool {
	s := sc.src
	seenDirs := map[string]bool{}
	seenFiles := map[string]bool{}
	changed := false
	root := s.opts.Dir
	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			s.opts.Logger.Warn("file source: cannot read", "source", s.opts.Name, "path", path, "err", err)
			return nil
		}
		if path != root && ignored(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			seenDirs[path] = true
			if err := sc.addWatch(path); err != nil {
				s.opts.Logger.Warn("file source: cannot watch", "source", s.opts.Name, "dir", path, "err", err)
			}
			return nil
		}
		if !isManifest(d.Name()) {
			return nil
		}
		fi, err := os.Stat(path) // follows symbolic links
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		seenFiles[path] = true
		if s.refresh(path, fi, touched[path]) {
			changed = true
		}
		return nil
	})
	if walkErr != nil {
		if s.rootErr == nil {
			s.opts.Logger.Error("file source: directory unreadable", "source", s.opts.Name, "dir", root, "err", walkErr)
			changed = true
		}
		s.rootErr = walkErr
	} else if s.rootErr != nil {
		s.rootErr = nil
		changed = true
	}
	for dir := range sc.watched {
		if !seenDirs[dir] {
			_ = sc.w.Remove(dir) // usually already gone with the directory
			delete(sc.watched, dir)
		}
	}
	for path := range s.files {
		if !seenFiles[path] {
			delete(s.files, path)
			changed = true
		}
	}
	return changed
}

// refresh brings the state of one file up to date and reports whether it
// changed. The file is read when it is another file than before (a rename
// over it, a swapped link), its size or mtime changed, or force is set;
// it is decoded only when its content hash changed.
func (s *Source) refresh(path string, fi fs.FileInfo, force bool) bool {
	prev := s.files[path]
	if prev != nil && !force && prev.info != nil && os.SameFile(prev.info, fi) &&
		prev.info.Size() == fi.Size() && prev.info.ModTime().Equal(fi.ModTime()) {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		st := &fileState{diags: model.Diagnostics{{Origin: model.Origin{File: path}, Message: "cannot read: " + err.Error()}}}
		if prev != nil {
			st.served = prev.served // keep the last good objects
		}
		s.files[path] = st
		return true
	}
	sum := sha256.Sum256(data)
	if prev != nil && prev.hash == sum {
		prev.info = fi
		return false
	}
	st := s.decode(path, data, prev)
	st.info, st.hash = fi, sum
	s.files[path] = st
	return true
}

// decode decodes and validates one file's content, reusing the pointers
// of unchanged objects from prev and keeping the last good version of
// objects that became broken.
func (s *Source) decode(path string, data []byte, prev *fileState) *fileState {
	s.decodes.Add(1)
	cfgs, diags := manifest.Decode(path, data, s.opts.Name)
	old := map[model.Key]*model.Config{}
	if prev != nil {
		for _, c := range prev.served {
			old[c.Key()] = c
		}
	}
	st := &fileState{}
	present := map[model.Key]*model.Config{}
	for _, c := range cfgs {
		vd := s.opts.Validate(c)
		diags = append(diags, vd...)
		if vd.HasErrors() {
			continue
		}
		k := c.Key()
		if o := present[k]; o != nil {
			diags = append(diags, duplicate(c, o))
			continue
		}
		present[k] = c
		st.served = append(st.served, source.Reuse(old[k], c))
	}
	// Objects served before and now missing: keep the last good version
	// if an error could be about them.
	broken, unattributed := brokenKeys(diags, s.opts.Name)
	for _, c := range prevServed(prev) {
		k := c.Key()
		if present[k] != nil || (!broken[k] && !unattributed) {
			continue
		}
		present[k] = c
		st.served = append(st.served, c)
		diags = append(diags, model.Diagnostic{
			Severity: model.SeverityWarning, Origin: c.Origin,
			Kind: c.Kind, Namespace: c.Namespace, Name: c.Name,
			Message: fmt.Sprintf("invalid update ignored: serving the last valid version (revision %s)", c.Revision),
		})
	}
	st.diags = diags
	return st
}

func prevServed(prev *fileState) []*model.Config {
	if prev == nil {
		return nil
	}
	return prev.served
}

// brokenKeys returns the keys of objects named by error diagnostics, and
// whether some error names no known object.
func brokenKeys(diags model.Diagnostics, sourceName string) (map[model.Key]bool, bool) {
	keys := map[model.Key]bool{}
	unattributed := false
	for _, d := range diags {
		if d.Severity != model.SeverityError {
			continue
		}
		if _, ok := model.LookupKind(d.Kind); !ok || d.Name == "" {
			unattributed = true
			continue
		}
		ns := d.Namespace
		if ns == "" {
			ns = manifest.DefaultNamespace
		}
		keys[model.Key{Source: sourceName, Kind: d.Kind, Namespace: ns, Name: d.Name}] = true
	}
	return keys, unattributed
}

// state builds the source state from the files, in path order. An object
// defined in two places is kept where it comes first and reported at the
// other.
func (s *Source) state() *model.SourceState {
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	st := &model.SourceState{Source: s.opts.Name, Synced: true}
	first := map[model.Key]*model.Config{}
	for _, p := range paths {
		f := s.files[p]
		st.Diagnostics = append(st.Diagnostics, f.diags...)
		for _, c := range f.served {
			k := c.Key()
			if o, dup := first[k]; dup {
				st.Diagnostics = append(st.Diagnostics, duplicate(c, o))
				continue
			}
			first[k] = c
			st.Configs = append(st.Configs, c)
		}
	}
	if s.rootErr != nil {
		st.Diagnostics = append(st.Diagnostics, model.Diagnostic{Origin: model.Origin{File: s.opts.Dir}, Message: "cannot read directory: " + s.rootErr.Error()})
	}
	slices.SortStableFunc(st.Diagnostics, func(a, b model.Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Origin.File, b.Origin.File), cmp.Compare(a.Origin.Line, b.Origin.Line))
	})
	return st
}

// duplicate reports c as a second definition of the object first defines.
func duplicate(c, first *model.Config) model.Diagnostic {
	return model.Errorf(&c.Meta, "metadata.name", "duplicate %s %s/%s: already defined at %s; this definition is ignored",
		c.Kind, c.Namespace, c.Name, first.Origin)
}

// ignored reports whether a file or directory name is hidden or an editor
// temporary file.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") ||
		strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".swp") ||
		strings.HasSuffix(name, ".tmp")
}

func isManifest(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}
