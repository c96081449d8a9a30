package services

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
)

// binaryOf returns the program whose absence means k is not installed.
func binaryOf(k Kind) string {
	switch k {
	case MariaDB:
		return "mariadbd"
	case Redis:
		return "redis-server"
	default:
		return "rabbitmq-server"
	}
}

// packageOf returns the Debian package that provides k.
func packageOf(k Kind) string {
	switch k {
	case MariaDB:
		return "mariadb-server"
	case Redis:
		return "redis-server"
	default:
		return "rabbitmq-server"
	}
}

// apt serializes apt-get runs (dpkg holds a lock) and remembers whether
// the package lists were updated by this process.
var apt struct {
	sync.Mutex
	updated bool
}

// installIfMissing installs pkg with apt-get when binary cannot be found.
// It reports whether it installed anything.
func installIfMissing(ctx context.Context, lg *slog.Logger, out io.Writer, binary, pkg string) (bool, error) {
	if _, err := lookBinary(binary); err == nil {
		return false, nil
	}
	lg.Info("binary missing, installing package", "binary", binary, "package", pkg)
	apt.Lock()
	defer apt.Unlock()
	if _, err := lookBinary(binary); err == nil {
		return false, nil // another goroutine installed it meanwhile
	}
	run := func(args []string) error {
		lg.Info("running", "cmd", shellJoin(args))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install %s: %s: %w", pkg, shellJoin(args), err)
		}
		return nil
	}
	euid := os.Geteuid()
	if !apt.updated {
		if err := run(asRoot(euid, "apt-get", "update")); err != nil {
			return false, err
		}
		apt.updated = true
	}
	if err := run(aptInstallArgs(euid, pkg)); err != nil {
		return false, err
	}
	if _, err := lookBinary(binary); err != nil {
		return false, fmt.Errorf("installed %s but still: %w", pkg, err)
	}
	return true, nil
}

// aptInstallArgs returns the command line that installs pkg. The lock
// timeout waits out another apt run (e.g. unattended-upgrades) instead of
// failing; sudo resets the environment, hence env for non-root users.
func aptInstallArgs(euid int, pkg string) []string {
	install := []string{"apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", pkg}
	if euid != 0 {
		install = append([]string{"env", "DEBIAN_FRONTEND=noninteractive"}, install...)
	}
	return asRoot(euid, install...)
}
