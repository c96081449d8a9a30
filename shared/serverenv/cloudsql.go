// The Cloud SQL path of OpenDBPool: a DSN whose protocol is
// config.CloudSQLNet names an instance by its connection name, and the
// pool dials it through the Cloud SQL Go connector.

package serverenv

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net"

	"cloud.google.com/go/cloudsqlconn"
	"github.com/go-sql-driver/mysql"
)

// cloudSQLOptions are the connector's options for every pool: IAM database
// authentication as the function's own service account (the DSN holds no
// password), the instance's private IP (the functions reach it through
// Direct VPC egress, port 3307), certificates refreshed when a connection
// needs them rather than by a background goroutine (Cloud Run throttles
// the CPU between requests, so a background refresh can miss its time),
// and none of the connector's own metrics (the functions may not write
// Cloud Monitoring metrics).
var cloudSQLOptions = []cloudsqlconn.Option{
	cloudsqlconn.WithIAMAuthN(),
	cloudsqlconn.WithDefaultDialOptions(cloudsqlconn.WithPrivateIP()),
	cloudsqlconn.WithLazyRefresh(),
	cloudsqlconn.WithBuiltInMetrics(false),
}

// cloudSQLConnector returns a connector for cfg whose connections go
// through a Cloud SQL dialer for the instance cfg.Addr names. Closing the
// pool closes the dialer (sql.DB closes a connector that is an io.Closer).
func cloudSQLConnector(cfg *mysql.Config) (driver.Connector, error) {
	d, err := cloudsqlconn.NewDialer(context.Background(), cloudSQLOptions...)
	if err != nil {
		return nil, fmt.Errorf("cloudsqlconn.NewDialer: %w", err)
	}
	instance := cfg.Addr
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := d.Dial(ctx, instance)
		if err != nil {
			return nil, fmt.Errorf("cloud sql dial %s: %w", instance, err)
		}
		return conn, nil
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	return &closingConnector{Connector: c, close: d.Close}, nil
}

// closingConnector closes the Cloud SQL dialer with the pool.
type closingConnector struct {
	driver.Connector
	close func() error
}

func (c *closingConnector) Close() error { return c.close() }
