//go:build unix

package kafkabridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive, advisory lock on dir for as long as the
// process lives or until the returned function is called. The operating
// system drops it when the process dies, so a crash leaves nothing stale.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "dcbkit.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("in use by another embedded broker")
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
