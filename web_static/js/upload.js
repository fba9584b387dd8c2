// Resumable uploads (tus 1.0.0 at /uploads) through tus-js-client, vendored
// under /static/vendor and loaded as a classic script (window.tus): no build step.
//
// A file is known again by its name, size and last-modified time: the
// fingerprint under which tus-js-client keeps the upload's URL in
// localStorage. Choosing the same file after a reload or a dropped network
// asks the server (HEAD) how much it has, and goes on from there.

const ENDPOINT = "/uploads";
// Network drops, 5xx, 423 (the previous page's PATCH still holds the upload),
// 409 (an offset moved on) and 429 (every upload slot of the server is taken)
// are retried after these pauses, then given up.
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000];

// tus-js-client's own rule (any failure but a 4xx, except 409 and 423), and 429:
// a busy server is a reason to wait, not to give up.
function shouldRetry(error) {
  const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
  return status < 400 || status >= 500 || [409, 423, 429].includes(status);
}

export function fingerprint(file) {
  return ["csv-import", file.name, file.size, file.lastModified].join("/");
}

// Resolves with the upload's id (the last part of its URL) once the server has every byte.
// `onStart` receives a cancel function: it stops sending, asks the server to
// drop what it has (tus termination), and rejects with an UploadCancelled.
export class UploadCancelled extends Error {
  constructor() {
    super("The upload was cancelled; nothing was imported.");
    this.name = "UploadCancelled";
  }
}

export function uploadFile(file, { chunkSize, onProgress, onResume, onStart = () => {} }) {
  const tus = window.tus;
  if (!tus || !tus.isSupported) return Promise.reject(new Error("this browser cannot upload resumably"));
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      endpoint: ENDPOINT,
      chunkSize,
      retryDelays: RETRY_DELAYS_MS,
      onShouldRetry: shouldRetry,
      metadata: { filename: file.name, filetype: file.type || "text/csv" },
      fingerprint: (chosen) => Promise.resolve(fingerprint(chosen)),
      // Kept until the import has started from it (an import refused with 409 can be
      // tried again without sending the file again); a gone upload (404) forgets it.
      removeFingerprintOnSuccess: false,
      onAfterResponse: (req, res) => {
        if (req.getMethod() === "HEAD" && res.getStatus() === 200) {
          onResume(Number(res.getHeader("Upload-Offset")), Number(res.getHeader("Upload-Length")));
        }
      },
      onProgress,
      onSuccess: () => resolve(upload.url.split("/").pop()),
      onError: (error) => reject(new Error(describe(error))),
    });
    onStart(() => {
      upload.abort(true).catch(() => {}); // a server that cannot be told lets the upload expire
      reject(new UploadCancelled());
    });
    upload.findPreviousUploads().then((previous) => {
      // The latest one: an older one was most likely imported already (the server says 404).
      const latest = previous.sort((a, b) => (Date.parse(b.creationTime) || 0) - (Date.parse(a.creationTime) || 0))[0];
      if (latest) upload.resumeFromPreviousUpload(latest);
      upload.start();
    }, reject);
  });
}

function describe(error) {
  const res = error.originalResponse;
  if (res) {
    try {
      const body = JSON.parse(res.getBody());
      if (body && body.error) return body.error;
    } catch {
      // not JSON: fall through
    }
    return `the upload failed (status ${res.getStatus()})`;
  }
  return "the upload was interrupted; choose the same file again to continue where it stopped";
}
