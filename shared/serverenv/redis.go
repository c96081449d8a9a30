// OpenRedis builds the go-redis client from config: plain TCP
// locally, AUTH plus TLS with the server's CA for Memorystore.

package serverenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/config"
)

// RedisOptions turns the config into client options, reading the CA if TLS is on.
func RedisOptions(c config.Redis) (*redis.Options, error) {
	o := &redis.Options{
		Addr:     c.Addr,
		Password: c.Password,
		DB:       c.DB,
		// Fail fast so Pub/Sub's retry, not a hung request, absorbs outages.
		DialTimeout:  5 * time.Second,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
	if !c.TLS {
		return o, nil
	}
	pem := []byte(c.CACert)
	if len(pem) == 0 && c.CAFile != "" {
		var err error
		if pem, err = os.ReadFile(c.CAFile); err != nil {
			return nil, fmt.Errorf("redis CA: %w", err)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(pem) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis CA: no PEM certificate found in REDIS_CA_CERT / REDIS_CA_CERT_FILE")
		}
		tc.RootCAs = pool
	}
	o.TLSConfig = tc
	return o, nil
}

// OpenRedis returns a client; it does not dial until first used.
func OpenRedis(c config.Redis) (*redis.Client, error) {
	o, err := RedisOptions(c)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(o), nil
}
