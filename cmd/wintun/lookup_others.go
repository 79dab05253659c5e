//go:build !linux

package main

import (
	"errors"
	"io/fs"
)

// lookupError says what to do when adapter name could not be opened.
func lookupError(cmd, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return missingAdapter(cmd, name, err)
	}
	return err
}
