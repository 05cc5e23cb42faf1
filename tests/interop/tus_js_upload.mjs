// Upload a file with tus-js-client (node): node tus_js_upload.mjs ENDPOINT TOKEN FILE SHA256 STOP_AT [UPLOAD_URL]
// Stops (aborts, as a dropped client) once STOP_AT bytes are accepted (0: never); resumes UPLOAD_URL when
// given. Prints one JSON line: {"url": ..., "offset": ..., "done": ...}.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const tus = require("tus-js-client");
const [endpoint, token, file, sha256, stopAtText, uploadUrl] = process.argv.slice(2);
const stopAt = Number(stopAtText);
const data = readFileSync(file);

const upload = new tus.Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: 64 * 1024,
  retryDelays: [0, 200, 500],
  metadata: { filename: basename(file), package_sha256: sha256 },
  onChunkComplete(_chunk, accepted) {
    if (stopAt && accepted >= stopAt && accepted < data.length) {
      upload.abort(false).then(() => {
        console.log(JSON.stringify({ url: upload.url, offset: accepted, done: false }));
        process.exit(0);
      });
    }
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, offset: data.length, done: true }));
  },
  onError(error) {
    console.error(String(error));
    process.exit(2);
  },
});
upload.start();
