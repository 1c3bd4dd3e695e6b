// Bundles the dashboard into static files that bnserve serves with --web_root.
// CMake (web/CMakeLists.txt) runs it with BNSERVE_WEB_GEN set to the
// directory protoc-gen-es wrote the bnserve.v1 TypeScript to; the page
// imports it as "@gen/...".
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));
const gen = process.env.BNSERVE_WEB_GEN ?? fileURLToPath(new URL("../build/web/gen", import.meta.url));

export default defineConfig({
  root,
  // Relative asset URLs: the files work wherever the server mounts them.
  base: "./",
  resolve: {
    alias: { "@gen": gen },
    // The generated code lives outside web/: resolve its runtime from here.
    dedupe: ["@bufbuild/protobuf"],
  },
  build: {
    target: "es2022",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
});
