import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { crc32 } from "node:zlib";

/** A zip with stored (uncompressed) entries: all a wheel needs, with no zip tool on the machine. */
export function storedZip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBuf = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date: 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(0, 30); // extra + comment length
    central.writeUInt32LE(0, 34); // disk + internal attributes
    central.writeUInt32LE(0, 38); // external attributes
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, data);
    centrals.push(central, nameBuf);
    offset += local.length + nameBuf.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A pure-python wheel of `rgrid_testpkg` whose `VALUE` is `value`, written by hand (METADATA, WHEEL, RECORD). */
export function testWheel(version: string, value: number): { filename: string; data: Buffer } {
  const dist = `rgrid_testpkg-${version}.dist-info`;
  const files: { name: string; data: Buffer }[] = [
    { name: "rgrid_testpkg/__init__.py", data: Buffer.from(`VALUE = ${value}\n`) },
    { name: `${dist}/METADATA`, data: Buffer.from(`Metadata-Version: 2.1\nName: rgrid-testpkg\nVersion: ${version}\n`) },
    { name: `${dist}/WHEEL`, data: Buffer.from("Wheel-Version: 1.0\nGenerator: rgrid-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n") },
  ];
  const record = files
    .map((f) => `${f.name},sha256=${createHash("sha256").update(f.data).digest("base64url")},${f.data.length}`)
    .concat(`${dist}/RECORD,,`)
    .join("\n");
  files.push({ name: `${dist}/RECORD`, data: Buffer.from(`${record}\n`) });
  return { filename: `rgrid_testpkg-${version}-py3-none-any.whl`, data: storedZip(files) };
}

/**
 * A PEP 503 simple index on 127.0.0.1 serving the given wheels of `rgrid-testpkg`. Counts requests
 * so a test can tell whether pip ran at all.
 */
export async function startSimpleIndex(
  wheels: { filename: string; data: Buffer }[],
): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    requests.push(url);
    if (url === "/simple/" || url === "/simple") {
      res
        .writeHead(200, { "content-type": "text/html" })
        .end('<html><body><a href="/simple/rgrid-testpkg/">rgrid-testpkg</a></body></html>');
      return;
    }
    if (url.startsWith("/simple/rgrid-testpkg")) {
      const links = wheels
        .map((w) => `<a href="/files/${w.filename}#sha256=${createHash("sha256").update(w.data).digest("hex")}">${w.filename}</a>`)
        .join("<br>");
      res.writeHead(200, { "content-type": "text/html" }).end(`<html><body>${links}</body></html>`);
      return;
    }
    const wheel = wheels.find((w) => url === `/files/${w.filename}`);
    if (wheel) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": wheel.data.length }).end(wheel.data);
      return;
    }
    res.writeHead(404).end("not found");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/simple`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
