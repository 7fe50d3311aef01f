package classifier_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// startTLSRedis runs a redis-server with a TLS port besides its plain one,
// with a new self-signed certificate for 127.0.0.1, and returns the
// server, the TLS port's address and a pool with the certificate.
func startTLSRedis(t *testing.T) (*redistest.Server, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test redis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := redistest.Start(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return srv, "127.0.0.1:" + strconv.Itoa(port), pool
}

// TLS to Redis works with the server's name taken from the address; TLS
// to a port without it fails within the timeout and says that the TLS
// handshake did, rather than only that a deadline passed, which reads
// like a slow network.
func TestRedisTLS(t *testing.T) {
	srv, tlsAddr, pool := startTLSRedis(t)
	ctx := context.Background()

	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{tlsAddr}, TLS: &tls.Config{RootCAs: pool}})
	defer st.Close()
	if _, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101}}); err != nil {
		t.Fatalf("learn over TLS: %v", err)
	}
	if tot, _, err := st.Lookup(ctx, []string{"a"}); err != nil || tot.Spam != 1 {
		t.Fatalf("lookup over TLS: %+v, %v", tot, err)
	}

	const timeout = 500 * time.Millisecond
	wrong := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, TLS: &tls.Config{RootCAs: pool}, Timeout: timeout, WriteTimeout: timeout})
	defer wrong.Close()
	start := time.Now()
	_, _, err := wrong.Lookup(ctx, []string{"a"})
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Errorf("TLS to a plain port: lookup took %v, timeout %v", took, timeout)
	}
	if !errors.Is(err, classifier.ErrUnavailable) {
		t.Errorf("TLS to a plain port: lookup: %v, want ErrUnavailable: the port may be busy, not wrong", err)
	}
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("TLS to a plain port: lookup: %v, want an error naming the TLS handshake", err)
	}
	_, err = wrong.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101}})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("TLS to a plain port: learn: %v, want an error naming the TLS handshake", err)
	}

	// A certificate the client does not trust names the reason too. The
	// handshake gets half the timeout: the default second was too little
	// for it on a loaded machine under the race detector, and the
	// deadline, not the certificate, was reported.
	untrusted := openRedisStore(t, classifier.RedisOptions{Addrs: []string{tlsAddr}, TLS: &tls.Config{}, Timeout: 20 * time.Second})
	defer untrusted.Close()
	_, _, err = untrusted.Lookup(ctx, []string{"a"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: lookup: %v, want an error naming the certificate", err)
	}
}
