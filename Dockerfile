# The agent-audit sidecar image: nothing but the binary and the shared libraries it loads.
# No base image is pulled. The build context is prepared by `cargo xtask image --context-only`
# (target/image/rootfs: the release binary, libseccomp, libgcc_s, libc and the loader at the
# paths `ldd` names):
#
#     cargo xtask image --context-only
#     docker build -f Dockerfile -t agent-audit:latest target/image
#
# `cargo xtask image` does both. Usage (the sidecar line): see docs/containers-and-kubernetes.md.
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/local/bin/agent-audit"]
CMD ["--help"]
