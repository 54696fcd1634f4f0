namespace KtConnect.KubeSim;

/// <summary>`KtConnect.KubeSim start|stop`: the simulated cluster as its own process.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("usage: KtConnect.KubeSim start|stop --state <dir>");
        return args.Length == 0 ? 2 : 2;
    }
}
