"""The official Kubernetes Python client's attach over WebSocket (v4.channel.k8s.io) against KubeSim (issue 14):
stream(connect_get_namespaced_pod_attach) to a pod whose main process echoes its stdin, then to a pod that does not
exist. Prints one JSON line of findings for the xunit driver (PythonClientTests).
Usage: python3 python_attach.py <kubeconfig> <namespace> <pod>."""
import json
import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream


def main():
    kubeconfig, namespace, pod = sys.argv[1], sys.argv[2], sys.argv[3]
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    out = {}

    resp = stream(v1.connect_get_namespaced_pod_attach, pod, namespace,
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    out["protocol"] = resp.sock.subprotocol if hasattr(resp.sock, "subprotocol") else None
    resp.write_stdin("from python\n")
    stdout = ""
    stderr = ""
    deadline = time.time() + 30
    while resp.is_open() and "got from python" not in stdout and time.time() < deadline:
        resp.update(timeout=1)
        if resp.peek_stdout():
            stdout += resp.read_stdout()
        if resp.peek_stderr():
            stderr += resp.read_stderr()
    out["stdout"] = stdout
    out["stderr"] = stderr
    out["open_before_close"] = resp.is_open()
    resp.close()

    try:
        stream(v1.connect_get_namespaced_pod_attach, "nosuch", namespace,
               stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
        out["missing"] = "attached"
    except ApiException as e:
        out["missing"] = str(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
