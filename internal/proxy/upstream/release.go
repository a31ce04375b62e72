package upstream

import "sync"

// releaseState holds a cluster's pre-bound release functions.
type releaseState struct {
	bindOnce                      sync.Once
	releaseH1Fn, releaseRequestFn func()
}
