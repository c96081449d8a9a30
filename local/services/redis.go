package services

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Debian locations of the system Redis.
const (
	redisSystemDir = "/var/lib/redis"
	redisSystemLog = "/var/log/redis/redis-server-ensure.log"
)

// redisArgs returns the redis-server command line for s. A system server
// daemonizes itself; a private one stays in the foreground so that its
// process can be stopped.
func redisArgs(binary string, s Server) []string {
	dir, logFile, daemonize := redisSystemDir, redisSystemLog, "yes"
	bind := []string{"127.0.0.1", "-::1"} // "-": skip ::1 if IPv6 is off
	if s.Dir != "" {
		dir, logFile, daemonize = s.Dir, filepath.Join(s.Dir, "redis.log"), "no"
		bind = []string{"127.0.0.1"}
	}
	args := []string{binary, "--port", strconv.Itoa(s.port()), "--bind"}
	args = append(args, bind...)
	return append(args,
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logFile, "--daemonize", daemonize)
}

func startRedis(ctx context.Context, lg *slog.Logger, s Server) (func() error, error) {
	bin, err := lookBinary("redis-server")
	if err != nil {
		return nil, err
	}
	euid := os.Geteuid()
	args := redisArgs(bin, s)
	logFile, outFile, cwd := redisSystemLog, systemOutFile(euid, "/var/log/redis/redis-server-ensure.out"), "/"
	if s.Dir != "" {
		logFile, outFile, cwd = filepath.Join(s.Dir, "redis.log"), filepath.Join(s.Dir, "redis.out"), s.Dir
	} else {
		args = asRoot(euid, args...)
		if err := runQuiet(ctx, lg, asRoot(euid, "mkdir", "-p", redisSystemDir, filepath.Dir(redisSystemLog)), nil); err != nil {
			return nil, err
		}
	}
	p, err := startProc(lg, args, os.Environ(), cwd, outFile, s.Dir == "", s.Dir == "")
	if err != nil {
		return nil, err
	}
	err = waitReady(ctx, redisTimeout, p, func(ctx context.Context) error { return pingRedis(ctx, s.Addr()) })
	if err != nil {
		if s.Dir != "" {
			_ = p.stopGroup(10 * time.Second)
		}
		return nil, startFailure(err, args, logFile, outFile)
	}
	if s.Dir == "" {
		return noStop, nil
	}
	return func() error { return p.stopGroup(20 * time.Second) }, nil
}

// pingRedis sends PING to the Redis server at addr. It speaks RESP itself
// because go-redis logs every failed dial through a global logger, which
// would flood the output while the server starts.
func pingRedis(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return fmt.Errorf("PING replied %q", line)
	}
	return nil
}
