"""The official Kubernetes Python client against KubeSim (issue 14): list pods, create a ConfigMap written the
client's usual way (a dict without kind/apiVersion), watch it arrive, delete it. Prints one JSON line of findings;
the xunit driver (PythonClientTests) asserts on them. Usage: python3 python_client.py <kubeconfig> <namespace>."""
import json
import sys

from kubernetes import client, config, watch


def main():
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    out = {}

    pods = v1.list_namespaced_pod(namespace)
    out["pods"] = sorted(p.metadata.name for p in pods.items)
    out["pod_phases"] = sorted({p.status.phase for p in pods.items})

    start = v1.list_namespaced_config_map(namespace).metadata.resource_version
    created = v1.create_namespaced_config_map(namespace, {"metadata": {"name": "py-cm", "labels": {"from": "python"}}, "data": {"k": "v"}})
    out["created_kind"] = created.kind
    out["created_data"] = created.data

    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=30):
        seen.append([event["type"], event["object"].metadata.name])
        if event["object"].metadata.name == "py-cm":
            w.stop()
    out["watched"] = seen

    status = v1.delete_namespaced_config_map("py-cm", namespace)
    out["delete_status"] = status.status
    try:
        v1.read_namespaced_config_map("py-cm", namespace)
        out["after_delete"] = "still there"
    except client.exceptions.ApiException as e:
        out["after_delete"] = e.status
    print(json.dumps(out))


if __name__ == "__main__":
    main()
