// Multipart upload through XMLHttpRequest, because fetch() cannot report
// upload progress and a multi-gigabyte file needs a byte bar while it goes up.

export function uploadFile(file, { onProgress }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/import");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { error: xhr.responseText.slice(0, 300) || `upload failed with status ${xhr.status}` };
      }
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener("error", () => reject(new Error("the upload was interrupted (network error)")));
    xhr.addEventListener("abort", () => reject(new Error("the upload was aborted")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
