"""imgclf.training"""
