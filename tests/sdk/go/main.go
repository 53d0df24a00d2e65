// A Go program using the OCI Go SDK the way Terraform's OCI provider and users' programs do: a
// session-token profile from ~/.oci/config (ConfigurationProviderForSessionTokenWithProfile),
// Object Storage puts in a loop for SDK_TEST_SECONDS, then one multipart upload of a file with the
// SDK's UploadManager (parallel parts). It prints one JSON line and exits 0, or 3 at the first
// failed request (with its HTTP status and when it happened).
//
// Environment: OCI_CLI_PROFILE (woci --exec sets it), OCI_CLI_CONFIG_FILE (default ~/.oci/config),
// SDK_TEST_BUCKET, SDK_TEST_SECONDS, SDK_TEST_UPLOAD_MIB, SDK_TEST_PART_MIB.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/objectstorage"
	"github.com/oracle/oci-go-sdk/v65/objectstorage/transfer"
)

type result struct {
	OK        bool    `json:"ok"`
	Puts      int     `json:"puts"`
	Multipart bool    `json:"multipart"`
	Elapsed   float64 `json:"elapsed"`
	Status    int     `json:"status,omitempty"`
	Error     string  `json:"error,omitempty"`
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	start := time.Now()
	res := result{}
	finish := func(err error) {
		res.Elapsed = time.Since(start).Seconds()
		code := 0
		if err != nil {
			res.Error = err.Error()
			var se common.ServiceError
			if errors.As(err, &se) {
				res.Status = se.GetHTTPStatusCode()
			}
			code = 3
		} else {
			res.OK = true
		}
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
		os.Exit(code)
	}

	config := os.Getenv("OCI_CLI_CONFIG_FILE")
	if config == "" {
		home, _ := os.UserHomeDir()
		config = filepath.Join(home, ".oci", "config")
	}
	profile := os.Getenv("OCI_CLI_PROFILE")
	if profile == "" {
		profile = "DEFAULT"
	}
	provider, err := common.ConfigurationProviderForSessionTokenWithProfile(config, profile, "")
	if err != nil {
		finish(err)
	}
	client, err := objectstorage.NewObjectStorageClientWithConfigurationProvider(provider)
	if err != nil {
		finish(err)
	}
	ctx := context.Background()
	ns, err := client.GetNamespace(ctx, objectstorage.GetNamespaceRequest{})
	if err != nil {
		finish(err)
	}
	bucket := os.Getenv("SDK_TEST_BUCKET")
	body := bytes.Repeat([]byte("woci-sdk-go "), 100)
	deadline := start.Add(time.Duration(envInt("SDK_TEST_SECONDS", 10)) * time.Second)
	for time.Now().Before(deadline) {
		name := fmt.Sprintf("go-put-%d", res.Puts)
		_, err := client.PutObject(ctx, objectstorage.PutObjectRequest{
			NamespaceName: ns.Value,
			BucketName:    &bucket,
			ObjectName:    &name,
			ContentLength: common.Int64(int64(len(body))),
			PutObjectBody: readCloser(body),
		})
		if err != nil {
			finish(err)
		}
		res.Puts++
		time.Sleep(200 * time.Millisecond)
	}

	// The multipart upload: a file split into parts sent in parallel, then committed.
	mib := int64(1 << 20)
	file, err := os.CreateTemp("", "woci-sdk-go-*.bin")
	if err != nil {
		finish(err)
	}
	defer os.Remove(file.Name())
	if _, err := file.Write(bytes.Repeat([]byte{7}, envInt("SDK_TEST_UPLOAD_MIB", 20)*int(mib))); err != nil {
		finish(err)
	}
	file.Close()
	name := "go-multipart"
	_, err = transfer.NewUploadManager().UploadFile(ctx, transfer.UploadFileRequest{
		UploadRequest: transfer.UploadRequest{
			NamespaceName:       ns.Value,
			BucketName:          &bucket,
			ObjectName:          &name,
			PartSize:            common.Int64(int64(envInt("SDK_TEST_PART_MIB", 5)) * mib),
			ObjectStorageClient: &client,
		},
		FilePath: file.Name(),
	})
	if err != nil {
		finish(err)
	}
	res.Multipart = true
	finish(nil)
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func readCloser(b []byte) nopCloser { return nopCloser{bytes.NewReader(b)} }
