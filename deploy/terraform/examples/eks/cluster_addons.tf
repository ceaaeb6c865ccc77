# EKS-only cluster add-ons the GPU node groups need.
#
# cluster-autoscaler (not Karpenter): the node groups are EKS managed node groups (modules/eks-gpu-pool), whose
# Auto Scaling groups carry cluster-autoscaler's auto-discovery tags (set by EKS) and node-template tags (set by
# the module) for scaling from zero. Karpenter would replace those groups with NodePools and EC2NodeClasses, a
# second way to describe the same nodes; with fixed GPU instance families, cluster-autoscaler is enough.
#
# The AWS node termination handler (IMDS mode, a DaemonSet on spot nodes): cordons and drains a spot node on
# the 2-minute interruption notice, so sie pods get SIGTERM and drain (values-eks.yaml sizes the drain to it).
# It runs with hostNetwork, so the launch template's IMDS hop limit of 1 still reaches the metadata service.
# Rebalance recommendations are left to the managed node group's Capacity Rebalancing.

locals {
  cluster_autoscaler_sa = "cluster-autoscaler"
}

module "cluster_autoscaler_irsa" {
  # checkov:skip=CKV_TF_1: a registry module pinned by version range, not by commit
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "~> 5.0"

  role_name_prefix                 = "${var.cluster_name}-cluster-autoscaler-"
  attach_cluster_autoscaler_policy = true
  cluster_autoscaler_cluster_names = [module.eks.cluster_name]
  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:${local.cluster_autoscaler_sa}"]
    }
  }
}

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.chart_versions.cluster_autoscaler
  namespace  = "kube-system"
  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = var.region
    autoDiscovery = { clusterName = module.eks.cluster_name }
    # cluster-autoscaler's minor version follows the cluster's.
    image = { tag = "v${var.kubernetes_version}.0" }
    rbac = {
      serviceAccount = {
        name        = local.cluster_autoscaler_sa
        annotations = { "eks.amazonaws.com/role-arn" = module.cluster_autoscaler_irsa.iam_role_arn }
      }
    }
    extraArgs = {
      # sie pods keep their model cache in an emptyDir: without this, their nodes would never scale down.
      "skip-nodes-with-local-storage" = false
      "balance-similar-node-groups"   = true
      expander                        = "least-waste"
    }
  })]
  depends_on = [module.eks]
}

resource "helm_release" "aws_node_termination_handler" {
  name       = "aws-node-termination-handler"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-node-termination-handler"
  version    = var.chart_versions.aws_node_termination_handler
  namespace  = "kube-system"
  values = [yamlencode({
    enableSpotInterruptionDraining = true
    enableScheduledEventDraining   = true
    enableRebalanceMonitoring      = false
    # Only spot nodes get an interruption notice; the chart's default tolerations let it onto the GPU taints.
    nodeSelector = { "eks.amazonaws.com/capacityType" = "SPOT" }
  })]
  depends_on = [module.eks]
}
