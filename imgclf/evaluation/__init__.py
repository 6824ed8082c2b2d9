"""imgclf.evaluation"""
