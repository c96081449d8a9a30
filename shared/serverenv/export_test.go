package serverenv

import "cloud.google.com/go/cloudsqlconn"

// SetCloudSQLTestOptions adds connector options (a local Admin API, static
// tokens) for the test, so the Cloud SQL path runs without Google.
func SetCloudSQLTestOptions(opts ...cloudsqlconn.Option) (restore func()) {
	saved := cloudSQLOptions
	cloudSQLOptions = append(append([]cloudsqlconn.Option{}, saved...), opts...)
	return func() { cloudSQLOptions = saved }
}
