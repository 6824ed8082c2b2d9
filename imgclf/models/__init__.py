"""imgclf.models"""
