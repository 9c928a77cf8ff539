#!@BUSYBOX_DIR@/sh
# Nix's sandbox calls pivot_root, which the kernel refuses while the root is the initramfs itself
# (the rootfs mount has no parent): everything runs on a bind mount of it moved over /.
@BUSYBOX_DIR@/mount --bind / /mnt && cd /mnt && @BUSYBOX_DIR@/mount --move . / && exec @BUSYBOX_DIR@/chroot . @BUSYBOX_DIR@/init
exec @BUSYBOX_DIR@/init
