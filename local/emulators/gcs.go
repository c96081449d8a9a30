package emulators

import (
	"fmt"
	"net"
	"strconv"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Defaults of the local Cloud Storage emulator, fake-gcs-server's own port.
const (
	DefaultGCSHost        = "127.0.0.1"
	DefaultGCSPort uint16 = 4443
)

// StartGCS starts fake-gcs-server over plain HTTP on host:port (port 0
// picks a free port on 127.0.0.1; read the address back from URL()) with
// bucket created. Stop the server to close it.
//
// Point the official storage client at it with
// STORAGE_EMULATOR_HOST=host:port (the client adds http://). Use the same
// host as URL() reports: the client reads objects through the XML API path
// /{bucket}/{object}, which fake-gcs serves only for requests whose Host is
// its public host, set here to host ("localhost" becomes 127.0.0.1). With
// another host name the reads fail as "object doesn't exist" unless the
// client is made with storage.WithJSONReads().
func StartGCS(host string, port uint16, bucket string) (*fakestorage.Server, error) {
	if host == "" {
		host = DefaultGCSHost
	}
	if port == 0 || host == "localhost" {
		// fake-gcs ignores Host when Port is 0 and listens on 127.0.0.1;
		// and a name would resolve to an address in URL() that no longer
		// matches the public host. Either way use the address itself.
		host = "127.0.0.1"
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       host,
		Port:       port,
		PublicHost: host,
	})
	if err != nil {
		return nil, fmt.Errorf("fakestorage.NewServerWithOptions(%s): %w", net.JoinHostPort(host, strconv.Itoa(int(port))), err)
	}
	if bucket != "" {
		if err := createBucket(srv, bucket); err != nil {
			srv.Stop()
			return nil, err
		}
	}
	return srv, nil
}

// createBucket creates bucket; fake-gcs panics on a backend error, which is
// turned into an error here.
func createBucket(srv *fakestorage.Server, bucket string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fakestorage.CreateBucketWithOpts(%s): %v", bucket, r)
		}
	}()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return nil
}
