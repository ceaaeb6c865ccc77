# Empty AWS account -> VPC, EKS cluster with a CPU system node group, an on-demand GPU floor and a spot GPU
# burst group (this repo's module), ECR for the images -> cluster-autoscaler and the AWS node termination
# handler (cluster_addons.tf), KEDA, kube-prometheus-stack, Envoy Gateway, NVIDIA's device plugin and sie
# (values-gpu.yaml + values-eks.yaml). Walkthrough: deploy/README.md.

data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394: the example takes the first three zones of the region; pin zone ids in production
  state = "available"
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, 3)
}

module "vpc" {
  # checkov:skip=CKV_TF_1: a registry module pinned by version range, not by commit
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 5.0"

  name               = var.cluster_name
  cidr               = "10.0.0.0/16"
  azs                = local.azs
  private_subnets    = ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
  public_subnets     = ["10.0.96.0/22", "10.0.100.0/22", "10.0.104.0/22"]
  enable_nat_gateway = true
  single_nat_gateway = true

  public_subnet_tags  = { "kubernetes.io/role/elb" = 1 }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = 1 }
}

module "eks" {
  # checkov:skip=CKV_TF_1: a registry module pinned by version range, not by commit
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.0"

  cluster_name                             = var.cluster_name
  cluster_version                          = var.kubernetes_version
  vpc_id                                   = module.vpc.vpc_id
  subnet_ids                               = module.vpc.private_subnets
  cluster_endpoint_public_access           = true
  enable_cluster_creator_admin_permissions = true

  cluster_addons = {
    coredns                = {}
    kube-proxy             = {}
    vpc-cni                = {}
    eks-pod-identity-agent = {}
  }

  eks_managed_node_groups = {
    system = {
      instance_types = ["m7i.2xlarge"]
      min_size       = 1
      max_size       = 3
      desired_size   = 2
    }
  }
}

resource "aws_ecr_repository" "sie" {
  name                 = "sie"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
  }
}

# The floor: on-demand, always up (the chart's `gpu` pool). cluster-autoscaler adds nodes up to max_size.
module "gpu_pool" {
  source = "../../modules/eks-gpu-pool"

  cluster_name   = module.eks.cluster_name
  name           = "gpu"
  subnet_ids     = module.vpc.private_subnets
  instance_types = ["g6.2xlarge", "g6.4xlarge", "g5.2xlarge"]
  capacity_type  = "ON_DEMAND"
  min_size       = var.gpu_floor_size
  max_size       = var.gpu_floor_size
  desired_size   = var.gpu_floor_size
}

# The burst: spot, from zero (the chart's `gpu-spot` pool); cluster-autoscaler builds the first node from the
# group's node-template tags when KEDA adds a pod.
module "gpu_spot_pool" {
  source = "../../modules/eks-gpu-pool"

  cluster_name   = module.eks.cluster_name
  name           = "gpu-spot"
  subnet_ids     = module.vpc.private_subnets
  instance_types = ["g6.2xlarge", "g6.4xlarge", "g5.2xlarge"]
  capacity_type  = "SPOT"
  min_size       = 0
  max_size       = var.gpu_spot_max_size
  desired_size   = 0
}

module "platform" {
  source = "../../modules/sie-platform"

  image_repository             = aws_ecr_repository.sie.repository_url
  install_nvidia_device_plugin = true
  values_files = [
    "${path.module}/../../../helm/sie/values-gpu.yaml",
    "${path.module}/../../../helm/sie/values-eks.yaml",
  ]
  values = {
    workers = {
      pools = {
        gpu        = { nodeSelector = module.gpu_pool.node_selector }
        "gpu-spot" = { nodeSelector = module.gpu_spot_pool.node_selector }
      }
    }
  }

  depends_on = [module.eks, module.gpu_pool, module.gpu_spot_pool, helm_release.cluster_autoscaler]
}
