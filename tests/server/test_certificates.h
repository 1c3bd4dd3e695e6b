// Test certificates made by Debian's `openssl` CLI at test time: a CA, a
// server certificate for 127.0.0.1 / localhost signed by it, a client
// certificate signed by it, and a second, unrelated CA (an untrusted
// issuer). Nothing is committed; each test makes its own under `dir`.
#ifndef BNSERVE_TESTS_SERVER_TEST_CERTIFICATES_H_
#define BNSERVE_TESTS_SERVER_TEST_CERTIFICATES_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace bnserve {
namespace testing {

struct TestCertificates {
  std::string dir;
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string other_ca_cert, other_ca_key;  // signs nothing of ours

  // Generates everything under `dir` (created). False when openssl failed.
  bool Generate(const std::string& directory) {
    dir = directory;
    std::filesystem::create_directories(dir);
    ca_cert = dir + "/ca.pem";
    ca_key = dir + "/ca.key";
    server_cert = dir + "/server.pem";
    server_key = dir + "/server.key";
    client_cert = dir + "/client.pem";
    client_key = dir + "/client.key";
    other_ca_cert = dir + "/other_ca.pem";
    other_ca_key = dir + "/other_ca.key";
    const std::string ext = dir + "/server.ext";
    std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "extendedKeyUsage=serverAuth\n";
    const std::string client_ext = dir + "/client.ext";
    std::ofstream(client_ext) << "extendedKeyUsage=clientAuth\n";
    const std::string q = " >/dev/null 2>&1";
    auto ca = [&](const std::string& cert, const std::string& key, const std::string& cn) {
      return absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=", cn,
                          " -keyout ", key, " -out ", cert, q);
    };
    auto leaf = [&](const std::string& name, const std::string& cn, const std::string& extfile) {
      const std::string key = dir + "/" + name + ".key";
      const std::string csr = dir + "/" + name + ".csr";
      const std::string cert = dir + "/" + name + ".pem";
      return absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=", cn, " -keyout ", key,
                          " -out ", csr, q, " && openssl x509 -req -in ", csr, " -CA ", ca_cert,
                          " -CAkey ", ca_key, " -CAcreateserial -days 2 -extfile ", extfile,
                          " -out ", cert, q);
    };
    for (const std::string& command :
         {ca(ca_cert, ca_key, "bnserve-test-ca"), ca(other_ca_cert, other_ca_key, "other-ca"),
          leaf("server", "localhost", ext), leaf("client", "bnserve-test-client", client_ext)}) {
      if (std::system(command.c_str()) != 0) return false;
    }
    return true;
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_TEST_CERTIFICATES_H_
