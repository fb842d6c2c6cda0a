"""Builds the test guest image from Debian packages and caches it in the build tree: the kernel
of linux-image-cloud-amd64 (the exact versioned package it depends on, fetched with
`apt-get download` and unpacked with `dpkg -x`) and an initramfs of busybox-static, the
virtio-net modules and tests/guest/{init,console,discard}."""

import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_SRC = os.path.join(os.path.dirname(HERE), "guest")
MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
           "failover", "net_failover", "virtio_net"]


def _run(*args, cwd=None):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, cwd=cwd).stdout


def kernel_package():
    out = _run("apt-cache", "depends", "linux-image-cloud-amd64")
    m = re.search(r"Depends: (linux-image-[\w.+-]+-cloud-amd64)", out)
    if not m:
        raise RuntimeError("cannot resolve the kernel package of linux-image-cloud-amd64")
    return m.group(1)


def build(out_dir):
    """Returns (kernel path, initramfs path), building them once into out_dir."""
    pkg = kernel_package()
    kernel = os.path.join(out_dir, "vmlinuz")
    initrd = os.path.join(out_dir, "initramfs.cpio.gz")
    stamp = os.path.join(out_dir, "stamp")
    sources = [os.path.join(GUEST_SRC, f) for f in ("init", "console", "discard")]
    want = pkg + " " + " ".join(str(int(os.path.getmtime(s))) for s in sources)
    if os.path.exists(stamp) and os.path.exists(initrd):
        with open(stamp) as f:
            if f.read() == want:
                return kernel, initrd
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    dl = os.path.join(out_dir, "deb")
    os.makedirs(dl)
    _run("apt-get", "download", pkg, cwd=dl)
    deb = [f for f in os.listdir(dl) if f.endswith(".deb")][0]
    root = os.path.join(out_dir, "kernel")
    _run("dpkg", "-x", os.path.join(dl, deb), root)
    boot = os.path.join(root, "boot")
    shutil.copy(os.path.join(boot, [f for f in os.listdir(boot) if f.startswith("vmlinuz")][0]), kernel)

    rd = os.path.join(out_dir, "initramfs")
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib/modules"):
        os.makedirs(os.path.join(rd, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rd, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rd, "bin", "sh"))
    for name in ("console", "discard"):
        shutil.copy(os.path.join(GUEST_SRC, name), os.path.join(rd, "bin", name))
    shutil.copy(os.path.join(GUEST_SRC, "init"), os.path.join(rd, "init"))
    found = {}
    for dirpath, _, files in os.walk(os.path.join(root, "lib", "modules")):
        for f in files:
            if f.endswith(".ko") and f[:-3] in MODULES:
                found[f[:-3]] = os.path.join(dirpath, f)
    missing = set(MODULES) - set(found)
    if missing:
        raise RuntimeError(f"modules missing from {pkg}: {sorted(missing)}")
    for m, path in found.items():
        shutil.copy(path, os.path.join(rd, "lib", "modules", m + ".ko"))
    files = subprocess.run(["find", "."], cwd=rd, check=True, capture_output=True).stdout
    cpio = subprocess.run(["busybox", "cpio", "-o", "-H", "newc"], cwd=rd, input=files,
                          check=True, capture_output=True).stdout
    with open(initrd, "wb") as f:
        subprocess.run(["gzip", "-1"], input=cpio, stdout=f, check=True)
    shutil.rmtree(dl)
    shutil.rmtree(root)
    with open(stamp, "w") as f:
        f.write(want)
    return kernel, initrd
