#!/bin/sh
# Host keys are made per pod at start, so no two shadows share one; KtConnect reads the public key
# through the Kubernetes exec API and pins it before connecting.
set -e
ssh-keygen -A >/dev/null
if [ -f /root/authorized/authorized_keys ]; then
  cp /root/authorized/authorized_keys /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
exec /usr/sbin/sshd -D -e
