"""imgclf.serving"""
