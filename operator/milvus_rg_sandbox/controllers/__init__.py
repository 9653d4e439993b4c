"""The Kubernetes controllers the sandbox emulates (kube-controller-manager's part of a cluster), each following
k8s.io/kubernetes v1.37.2: Deployments, ReplicaSets and StatefulSets. `milvus_rg_sandbox.workloads.WorkloadEmulator`
runs them over its informer cache."""
