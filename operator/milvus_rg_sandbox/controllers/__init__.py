"""The Kubernetes controllers the sandbox emulates (kube-controller-manager's part of a cluster), each following
k8s.io/kubernetes v1.37.2: Deployments, ReplicaSets, StatefulSets and the disruption controller of
PodDisruptionBudgets. `milvus_rg_sandbox.workloads.WorkloadEmulator` runs them over its informer cache."""
